/**
 * `publish`: the nodes a service publishes on listen on their advertised host at its port
 * and forward to ready instances anywhere (fewest connections). Plain ports forward bytes
 * (relay.ts); `http: true` forwards each request (http.ts), to the key's owner when the
 * service routes by key (keyed.ts), refused in words when none is ready. A port that
 * cannot be listened on is reported in words (`published()` and the log), not a crash,
 * and tried again after `RETRY_MS` on the node's clock.
 */
import type { IncomingMessage } from 'node:http'
import net, { type Server, type Socket } from 'node:net'
import { hostOf } from '../address'
import type { PublishSpec } from '../desired/types'
import { choose, readyTargets, suspectTargets, type Target } from './choose'
import { httpPublisher, type Opened } from './http'
import type { Incoming } from './incoming'
import { keyOf, owner } from './keyed'
import type { ProxyParts } from './parts'
import type { Relay } from './relay'
import { listen } from './sockets'
import type { PublishedPort } from './types'

/** A port that could not be listened on is tried again after this long (it may have been freed). */
const RETRY_MS = 5000

interface PublishListener { service: string, spec: PublishSpec, server?: Server, state: string }

export class Publisher {
  private readonly listeners = new Map<number, PublishListener>()
  private running = false

  constructor (private readonly p: ProxyParts, private readonly relay: Relay, private readonly incoming: Incoming) {}

  start (): void {
    this.running = true
    this.reconcile()
  }

  /** Stops publishing; returns the servers listening, for the caller to close. */
  stop (): Server[] {
    this.running = false
    const servers = [...this.listeners.values()].flatMap((l) => l.server === undefined ? [] : [l.server])
    this.listeners.clear()
    return servers
  }

  published (): PublishedPort[] {
    return [...this.listeners].map(([port, l]) => ({ service: l.service, port, state: l.state }))
  }

  /** Open the published ports this node should listen on, close the others. */
  reconcile (): void {
    if (!this.running) return
    const { c } = this.p
    const want = new Map<number, { service: string, spec: PublishSpec }>()
    for (const [name, svc] of Object.entries(c.spec.current()?.spec.services ?? {})) {
      if (svc.publish !== undefined && this.here(svc.publish) && !want.has(svc.publish.port)) want.set(svc.publish.port, { service: name, spec: svc.publish })
    }
    for (const [port, l] of this.listeners) {
      const w = want.get(port)
      if (w !== undefined && w.service === l.service && w.spec.http === l.spec.http) { l.spec = w.spec; continue }
      this.listeners.delete(port)
      l.server?.close()
      c.log.info(`publish: no longer listening on port ${port} for ${l.service}`)
    }
    for (const [port, w] of want) {
      if (!this.listeners.has(port)) this.open(port, w.service, w.spec)
    }
  }

  private open (port: number, service: string, spec: PublishSpec): void {
    const { c } = this.p
    const host = hostOf(c.membership.address)
    const l: PublishListener = { service, spec, state: 'opening' }
    this.listeners.set(port, l)
    const server = spec.http === true
      ? httpPublisher({
        service: () => service,
        forwarded: true,
        warn: (line) => c.log.warn(`publish ${port}: ${line}`),
        open: async (req) => await this.openHttp(l, req)
      })
      : net.createServer((socket) => {
        socket.on('error', () => {})
        void this.relay.forward(l.service, l.spec.target, socket, `publish ${port}`, false)
      })
    listen(server, port, host).then(() => {
      if (this.listeners.get(port) !== l) { server.close(); return }
      l.server = server
      l.state = 'listening'
      c.log.info(`publish: ${service} on ${host}:${port}`)
    }, (err: Error & { code?: string }) => {
      l.state = err.code === 'EADDRINUSE'
        ? `cannot publish ${service} on ${host}:${port}: the port is already in use on ${c.membership.id}`
        : `cannot publish ${service} on ${host}:${port}: ${err.message}`
      c.log.warn(l.state)
      this.p.clock.after(RETRY_MS, () => { if (this.listeners.get(port) === l) { this.listeners.delete(port); this.reconcile() } }).unref()
    })
  }

  private here (p: PublishSpec): boolean {
    const { c } = this.p
    const on = p.on ?? 'every'
    if (on === 'every') return true
    if (on === 'hubs') return c.hubs.current().includes(c.membership.id)
    const labels = c.membership.table()[c.membership.id]?.characteristics.labels ?? {}
    return Object.entries(on).every(([k, v]) => labels[k] === v)
  }

  /**
   * Where one HTTP request on a published port goes: the key's owner when the service
   * routes by key, else fewest connections; refused in words when none is ready. An
   * instance on another node gets the request through a stream its node reads, which
   * admits it or not (admission.ts); one here is admitted here.
   */
  private async openHttp (l: PublishListener, req: IncomingMessage): Promise<Opened> {
    const { c, conns } = this.p
    const svc = c.spec.current()?.spec.services[l.service]
    // None ready on an alive member: one on a suspect member rather than a 503 at once.
    const alive = readyTargets(c.membership.table(), l.service)
    const targets = alive.length > 0 ? alive : suspectTargets(c.membership.table(), l.service)
    const none: Opened = { refuse: { status: 503, body: `${l.service} has no ready instance right now; try again in a moment` } }
    if (targets.length === 0) return none
    let target: Target | undefined
    const key = svc?.route === undefined ? undefined : keyOf(svc.route, req.headers, req.url ?? '/')
    if (key !== undefined) {
      const id = owner(key, targets.map((t) => t.instance))
      target = targets.find((t) => t.instance === id)
    } else {
      target = choose(targets, c.membership.id, (i) => conns.count(i), false, this.p.nextTurn())
    }
    if (target === undefined) return none
    if (target.node === c.membership.id) return this.incoming.openLocalHttp(target.instance, l.spec.target, req)
    const chosen = target
    const connect = async (): Promise<Socket> => {
      const socket = await this.p.dial.connectRemote(chosen, l.spec.target, true)
      conns.add(chosen.instance, socket)
      return socket
    }
    return { instance: chosen.instance, agent: this.p.upstreams.agentFor(chosen, l.spec.target, connect), connect }
  }
}
