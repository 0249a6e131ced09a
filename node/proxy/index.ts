/**
 * proxy: the node as its apps' way to each other and in from outside.
 *
 * - `uses`: for each service an instance's service uses, the node listens on a loopback
 *   port (given as `<NAME>_ADDR`/`_HOST`/`_PORT`, names.ts) and forwards every TCP
 *   connection to a ready instance of it: this node's own first, then the one with the
 *   fewest connections. On another node the bytes go through a mutual-TLS stream between
 *   the nodes (transport/stream.ts), never in clear. Only this node's own instances may
 *   connect: the client socket's uid (procfs) must be the node's or one of its instances'.
 * - `publish`: the nodes a service publishes on listen on their advertised host at that
 *   port and forward to ready instances anywhere (fewest connections). A port that cannot
 *   be listened on is reported in words (`published()` and the log), not a crash. With
 *   `http: true` each request is forwarded with `X-Forwarded-For` (http.ts), and a 503
 *   says so when no instance is ready. `route` sends every request with one key to one
 *   instance (keyed.ts: rendezvous hashing, the same on every node); `admission.maxInFlight`
 *   answers 503 in words beyond that many requests in flight to an instance, and
 *   `admission.maxKeys` when the key is new and the instance already holds that many keys
 *   "recently": seen in a request within `keyIdleMs` (recent-keys.ts). Both are counted on
 *   the instance's own node, which reads every request to it (admission.ts), so they hold
 *   across the cluster. Upstream connections are kept alive (upstreams.ts).
 *   Refusals are counted by service for `cluster.stats()` (`admissionRefusals()`).
 * - When a target instance is no longer ready (stopped, moved, its node dead), the
 *   connections forwarded to it are closed; new ones go to a ready one.
 *
 * The pieces, one job each: uses.ts (loopback listeners for this node's instances),
 * publish.ts (published ports, HTTP routing), relay.ts (a TCP connection forwarded as
 * bytes), incoming.ts (what reaches this node's own instances, admission), dial.ts
 * (reaching an instance here or through its node). Its timers (waiting for a ready
 * instance, retrying a port) run on the node's clock.
 *
 * @example
 *   const p = proxy()({ identity, transport, membership, hubs, spec, local: () => sup.report(), log })
 *   await p.start()
 *   await p.addressesFor('web')   // { REDIS_ADDR: '127.0.0.1:41234', REDIS_HOST: ..., REDIS_PORT: ... }
 */
import type { Server } from 'node:net'
import { systemClock } from '../clock'
import { normalizeSerial } from '../keys/read'
import { hostOf } from '../address'
import { StreamClient, streamServer, type StreamServer } from '../transport/stream'
import { serve } from '../protocol/table'
import { mesh } from '../protocol/mesh'
import { Admission } from './admission'
import { Dialer } from './dial'
import { Connections } from './forward'
import { Incoming } from './incoming'
import type { ProxyParts } from './parts'
import { Publisher } from './publish'
import { Relay } from './relay'
import type { Proxy, ProxyComponents, ProxyInit, PublishedPort } from './types'
import { Upstreams } from './upstreams'
import { UseListeners } from './uses'

export { parseUse, useEnv } from './names'
export { choose, readyTargets } from './choose'
export { owner, keyOf } from './keyed'
export { RecentKeys } from './recent-keys'

export type { Proxy, ProxyComponents, ProxyInit, PublishedPort } from './types'

export function proxy (init: ProxyInit = {}) {
  return (c: ProxyComponents): Proxy => new NodeProxy(init, c)
}

class NodeProxy implements Proxy {
  private readonly parts: ProxyParts
  private readonly uses: UseListeners
  private readonly publisher: Publisher
  private readonly incoming: Incoming
  private streams?: StreamServer
  private running = false
  private registered = false
  private readonly onChange = (): void => { this.sweep(); this.publisher.reconcile(); void this.uses.closeUnused() }

  constructor (init: ProxyInit, private readonly c: ProxyComponents) {
    let turn = 0
    this.parts = {
      init,
      c,
      clock: c.clock ?? systemClock,
      conns: new Connections(),
      upstreams: new Upstreams(),
      admission: new Admission(init.keyIdleMs ?? 60_000),
      dial: new Dialer(c, new StreamClient(c.identity, { timeoutMs: init.connectTimeoutMs, clock: c.clock })),
      nextTurn: () => turn++
    }
    const relay = new Relay(this.parts)
    this.incoming = new Incoming(this.parts)
    this.uses = new UseListeners(this.parts, relay)
    this.publisher = new Publisher(this.parts, relay, this.incoming)
  }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    if (!this.registered) {
      this.registered = true
      serve(this.c.transport, mesh, 'proxy.streamPort', () => this.streams?.port ?? 0)
    }
    this.streams = await streamServer({
      identity: this.c.identity,
      host: hostOf(this.c.membership.address),
      log: this.c.log,
      clock: this.c.clock,
      revoked: () => new Set((this.c.spec.current()?.spec.cluster.revokedSerials ?? []).map(normalizeSerial)),
      onStream: (header, socket, peer) => { void this.incoming.serveStream(header, socket, peer.name) }
    })
    this.c.membership.events.on('change', this.onChange)
    this.c.hubs.events.on('change', this.onChange)
    this.c.spec.events.on('applied', this.onChange)
    this.publisher.start()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.c.membership.events.off('change', this.onChange)
    this.c.hubs.events.off('change', this.onChange)
    this.c.spec.events.off('applied', this.onChange)
    const published = this.publisher.stop()
    const servers: Server[] = [...await this.uses.takeAll(), ...published]
    this.parts.upstreams.closeAll()
    this.parts.conns.closeEverything()
    await Promise.all(servers.map(async (s) => await new Promise<void>((resolve) => s.close(() => resolve()))))
    await this.streams?.close()
    this.streams = undefined
  }

  published (): PublishedPort[] { return this.publisher.published() }

  connections (): Record<string, number> {
    const conns = this.parts.conns
    return Object.fromEntries(conns.instances().map((i) => [i, conns.count(i)]))
  }

  async addressesFor (service: string): Promise<Record<string, string>> { return await this.uses.addressesFor(service) }

  /** Requests refused at the admission limit, by service, since the node started. */
  admissionRefusals (): Record<string, number> { return this.parts.admission.refusals() }

  /** Close forwarded connections whose target is no longer a ready instance. */
  private sweep (): void {
    const ready = new Set<string>()
    const readyAt = new Set<string>()
    for (const m of Object.values(this.c.membership.table())) {
      if (m.status !== 'alive' && m.status !== 'suspect') continue
      for (const [id, s] of Object.entries(m.instances ?? {})) if (s.state === 'ready') { ready.add(id); readyAt.add(`${m.id}\0${id}`) }
    }
    this.parts.admission.keepOnly(ready)
    this.parts.upstreams.keepOnly((instance, node) => readyAt.has(`${node}\0${instance}`))
    const conns = this.parts.conns
    for (const instance of conns.instances()) {
      if (ready.has(instance)) continue
      const n = conns.closeAll(instance)
      if (n > 0) this.c.log.info(`closed ${n} forwarded connection${n === 1 ? '' : 's'} to ${instance}: it is no longer ready`)
    }
  }
}
