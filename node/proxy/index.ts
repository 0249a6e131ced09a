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
 *   Refusals are counted by service for `cluster.stats()` (admissionRefusalsOf).
 * - When a target instance is no longer ready (stopped, moved, its node dead), the
 *   connections forwarded to it are closed; new ones go to a ready one.
 *
 * @example
 *   const p = proxy()({ identity, transport, membership, hubs, spec, local: () => sup.report(), log })
 *   await p.start()
 *   await p.addressesFor('web')   // { REDIS_ADDR: '127.0.0.1:41234', REDIS_HOST: ..., REDIS_PORT: ... }
 */
import { stat } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import net, { type AddressInfo, type Server, type Socket } from 'node:net'
import { OriginError, errorMessage } from '../errors'
import { normalizeSerial } from '../keys/read'
import type { PublishSpec } from '../desired/types'
import { serviceOfInstance } from '../scheduler'
import { hostOf } from '../address'
import { StreamClient, streamServer, type StreamServer } from '../transport/stream'
import { choose, readyTargets, suspectTargets, type Target } from './choose'
import { Connections, join } from './forward'
import { httpPublisher, type Opened } from './http'
import { keyOf, owner } from './keyed'
import { Upstreams } from './upstreams'
import { admissionRefusalsOf } from './recent-keys'
import { Admission } from './admission'
import { parseUse, useEnv, type Use } from './names'
import { loopbackPeerUid } from './peercred'
import type { Proxy, ProxyComponents, ProxyInit, PublishedPort } from './types'
import { call, serve } from '../protocol/table'
import { mesh } from '../protocol/mesh'

export { parseUse, useEnv } from './names'
export { choose, readyTargets } from './choose'
export { owner, keyOf } from './keyed'
export { admissionRefusalsOf, RecentKeys } from './recent-keys'

export type { Proxy, ProxyComponents, ProxyInit, PublishedPort } from './types'

export function proxy (init: ProxyInit = {}) {
  return (c: ProxyComponents): Proxy => new NodeProxy(init, c)
}

const LOOPBACK = '127.0.0.1'

interface UseListener { use: Use, server: Server, port: number }
interface PublishListener { service: string, spec: PublishSpec, server?: Server, state: string }

class NodeProxy implements Proxy {
  private readonly conns = new Connections()
  private readonly upstreams = new Upstreams()
  private readonly uses = new Map<string, Promise<UseListener>>()
  private readonly publishes = new Map<number, PublishListener>()
  private readonly streamPorts = new Map<string, Promise<number>>()
  private streams?: StreamServer
  private readonly streamClient: StreamClient
  private running = false
  private registered = false
  private allowedUids = new Set<number>()
  private uidsAt = 0
  private turn = 0
  private readonly admission: Admission
  /** Streams from other nodes carrying HTTP requests (header `http`), by the instance and port they are for. */
  private readonly httpStreams = new WeakMap<Socket, { instance: string, port?: string }>()
  /** The second hop: requests other nodes' published ports send to this node's instances. */
  private readonly instanceHttp = httpPublisher({
    forwarded: false,
    service: (req) => serviceOfInstance(this.httpStreams.get(req.socket)?.instance ?? ''),
    warn: (line) => this.c.log.warn(`http from another node: ${line}`),
    open: async (req) => {
      const to = this.httpStreams.get(req.socket)
      if (to === undefined) return { refuse: { status: 502, body: 'a request on a stream with no instance' } }
      return await this.openLocalHttp(to.instance, to.port, req)
    }
  })
  private readonly onChange = (): void => { this.sweep(); this.reconcilePublished(); void this.closeUnusedListeners() }

  constructor (private readonly init: ProxyInit, private readonly c: ProxyComponents) {
    this.streamClient = new StreamClient(c.identity, { timeoutMs: init.connectTimeoutMs })
    this.admission = new Admission(c.membership.id, init.keyIdleMs ?? 60_000)
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
      revoked: () => new Set((this.c.spec.current()?.spec.cluster.revokedSerials ?? []).map(normalizeSerial)),
      onStream: (header, socket, peer) => { void this.serveStream(header, socket, peer.name) }
    })
    this.c.membership.events.on('change', this.onChange)
    this.c.hubs.events.on('change', this.onChange)
    this.c.spec.events.on('applied', this.onChange)
    this.reconcilePublished()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.c.membership.events.off('change', this.onChange)
    this.c.hubs.events.off('change', this.onChange)
    this.c.spec.events.off('applied', this.onChange)
    const servers: Server[] = []
    for (const p of this.uses.values()) servers.push((await p.catch(() => undefined))?.server as Server)
    for (const p of this.publishes.values()) if (p.server !== undefined) servers.push(p.server)
    this.uses.clear()
    this.publishes.clear()
    this.upstreams.closeAll()
    this.conns.closeEverything()
    await Promise.all(servers.filter((s) => s !== undefined).map(async (s) => await new Promise<void>((resolve) => s.close(() => resolve()))))
    await this.streams?.close()
    this.streams = undefined
  }

  published (): PublishedPort[] {
    return [...this.publishes].map(([port, p]) => ({ service: p.service, port, state: p.state }))
  }

  connections (): Record<string, number> {
    return Object.fromEntries(this.conns.instances().map((i) => [i, this.conns.count(i)]))
  }

  async addressesFor (service: string): Promise<Record<string, string>> {
    const svc = this.c.spec.current()?.spec.services[service]
    const out: Record<string, string> = {}
    for (const text of svc?.uses ?? []) {
      const l = await this.useListener(parseUse(text))
      Object.assign(out, useEnv(l.use, LOOPBACK, l.port))
    }
    return out
  }

  private async useListener (use: Use): Promise<UseListener> {
    let p = this.uses.get(use.key)
    if (p === undefined) {
      p = (async () => {
        const server = net.createServer((socket) => { void this.acceptUse(use, socket, server) })
        await listen(server, 0, LOOPBACK)
        const port = (server.address() as AddressInfo).port
        this.c.log.info(`uses ${use.key}: listening on ${LOOPBACK}:${port} for this node's instances`)
        return { use, server, port }
      })()
      this.uses.set(use.key, p)
      p.catch(() => this.uses.delete(use.key))
    }
    return await p
  }

  /**
   * Only this node's own instances (and the node's own user) may use the loopback listeners.
   * The check (procfs, milliseconds on a busy host) runs while the upstream connection opens.
   */
  private async acceptUse (use: Use, socket: Socket, server: Server): Promise<void> {
    socket.on('error', () => {})
    const serverPort = (server.address() as AddressInfo).port
    const allowed = loopbackPeerUid(socket.remotePort ?? 0, serverPort).then(async (uid) => {
      if (uid === undefined || await this.isOwnUid(uid)) return true
      this.c.log.warn(`uses ${use.key}: refused a connection from uid ${uid} (not this node's nor one of its instances')`)
      return false
    })
    await this.forward(use.service, use.port, socket, `uses ${use.key}`, true, allowed)
  }

  private async isOwnUid (uid: number): Promise<boolean> {
    if (uid === process.getuid?.()) return true
    if (this.allowedUids.has(uid)) return true
    // A new instance (or a new uid): look again, at most every 500 ms.
    if (Date.now() - this.uidsAt < 500 || this.c.usage === undefined) return false
    this.uidsAt = Date.now()
    const pids = Object.values(await this.c.usage()).flatMap((u) => u.pids)
    const uids = await Promise.all(pids.map(async (pid) => (await stat(`/proc/${pid}`).catch(() => undefined))?.uid))
    this.allowedUids = new Set(uids.filter((u): u is number => u !== undefined))
    return this.allowedUids.has(uid)
  }

  /** Forward `client` to a ready instance of `service` (port `portName`, default its first). */
  private async forward (service: string, portName: string | undefined, client: Socket, what: string, preferLocal: boolean, allowed: Promise<boolean> = Promise.resolve(true)): Promise<void> {
    client.pause()
    let ok = true
    allowed.then((yes) => { ok = yes; if (!yes) client.destroy() }, () => {})
    const target = await this.waitForTarget(service, preferLocal)
    if (!ok) return
    if (target === undefined) {
      this.c.log.warn(`${what}: no ready instance of ${service} within ${this.init.waitForReadyMs ?? 5000} ms; closing the connection`)
      client.destroy()
      return
    }
    this.conns.add(target.instance, client)
    try {
      const upstream = await this.connectTo(target, portName)
      if (!(await allowed) || !ok || client.destroyed) { upstream.destroy(); return }
      join(client, upstream)
      client.resume()
    } catch (err) {
      this.c.log.warn(`${what}: cannot reach ${target.instance} on ${target.node}: ${errorMessage(err)}`)
      client.destroy()
    }
  }

  private async waitForTarget (service: string, preferLocal: boolean): Promise<Target | undefined> {
    const pick = (): Target | undefined => choose(readyTargets(this.c.membership.table(), service), this.c.membership.id, (i) => this.conns.count(i), preferLocal, this.turn++)
    const now = pick()
    if (now !== undefined) return now
    return await new Promise((resolve) => {
      const onChange = (): void => { const t = pick(); if (t !== undefined) { done(); resolve(t) } }
      const timer = setTimeout(() => { done(); resolve(undefined) }, this.init.waitForReadyMs ?? 5000)
      const done = (): void => { clearTimeout(timer); this.c.membership.events.off('change', onChange) }
      this.c.membership.events.on('change', onChange)
    })
  }

  private async connectTo (target: Target, portName: string | undefined): Promise<Socket> {
    return target.node === this.c.membership.id ? await this.connectLocal(target.instance, portName) : await this.connectRemote(target, portName)
  }

  /** A TCP connection to a ready instance on this node, at its named port. */
  private async connectLocal (instance: string, portName: string | undefined): Promise<Socket> {
    const r = this.c.local().find((x) => x.instance === instance)
    if (r === undefined || r.status.state !== 'ready') throw new OriginError('E_NOT_FOUND', `${instance} is not ready on this node`)
    const port = portName === undefined ? r.port : Object.hasOwn(r.ports, portName) ? r.ports[portName] : undefined
    if (port === undefined) throw new OriginError('E_NOT_FOUND', `${instance} has no port named ${portName ?? '?'} (it has ${Object.keys(r.ports).join(', ')})`)
    return await connectTcp(hostOf(r.address), port)
  }

  /** A stream to `target` through its node; with `http`, that node reads the requests (and counts admission). */
  private async connectRemote (target: Target, portName: string | undefined, http = false): Promise<Socket> {
    const member = this.c.membership.table()[target.node]
    if (member === undefined) throw new OriginError('E_NOT_FOUND', `${target.node} is not in the member table`)
    let port = this.streamPorts.get(member.address)
    if (port === undefined) {
      port = this.c.transport.peer(member.address).then(async (conn) => await call(conn, mesh, 'proxy.streamPort'))
      this.streamPorts.set(member.address, port)
    }
    try {
      const p = await port
      if (p === 0) throw new OriginError('E_UNREACHABLE', `${target.node} does not serve streams yet`)
      return await this.streamClient.open(`${hostOf(member.address)}:${p}`, { instance: target.instance, port: portName ?? null, ...(http ? { http } : {}) })
    } catch (err) {
      this.streamPorts.delete(member.address) // the node may have restarted on another stream port
      throw err
    }
  }

  /** Another node forwards a connection to one of our instances. */
  private async serveStream (header: Record<string, unknown>, socket: Socket, from: string): Promise<void> {
    socket.on('error', () => {})
    const instance = typeof header.instance === 'string' ? header.instance : ''
    const portName = typeof header.port === 'string' ? header.port : undefined
    if (header.http === true) {
      this.httpStreams.set(socket, { instance, port: portName })
      this.conns.add(instance, socket)
      this.instanceHttp.emit('connection', socket)
      socket.resume()
      return
    }
    try {
      const upstream = await this.connectLocal(instance, portName)
      this.conns.add(instance, socket)
      join(socket, upstream)
      socket.resume()
    } catch (err) {
      this.c.log.warn(`stream from ${from} to ${instance}: ${errorMessage(err)}`)
      socket.destroy()
    }
  }

  /**
   * Where one HTTP request on a published port goes: the key's owner when the service
   * routes by key, else fewest connections; refused in words when none is ready. An
   * instance on another node gets the request through a stream its node reads, which
   * admits it or not (admission.ts); one here is admitted here.
   */
  private async openHttp (l: PublishListener, req: IncomingMessage): Promise<Opened> {
    const svc = this.c.spec.current()?.spec.services[l.service]
    // None ready on an alive member: one on a suspect member rather than a 503 at once.
    const alive = readyTargets(this.c.membership.table(), l.service)
    const targets = alive.length > 0 ? alive : suspectTargets(this.c.membership.table(), l.service)
    const none: Opened = { refuse: { status: 503, body: `${l.service} has no ready instance right now; try again in a moment` } }
    if (targets.length === 0) return none
    let target: Target | undefined
    const key = svc?.route === undefined ? undefined : keyOf(svc.route, req.headers, req.url ?? '/')
    if (key !== undefined) {
      const id = owner(key, targets.map((t) => t.instance))
      target = targets.find((t) => t.instance === id)
    } else {
      target = choose(targets, this.c.membership.id, (i) => this.conns.count(i), false, this.turn++)
    }
    if (target === undefined) return none
    if (target.node === this.c.membership.id) return this.openLocalHttp(target.instance, l.spec.target, req)
    const chosen = target
    const connect = async (): Promise<Socket> => {
      const socket = await this.connectRemote(chosen, l.spec.target, true)
      this.conns.add(chosen.instance, socket)
      return socket
    }
    return { instance: chosen.instance, agent: this.upstreams.agentFor(chosen, l.spec.target, connect), connect }
  }

  /** A request for `instance` on this node: admitted by its limits, then on a kept-alive connection to it. */
  private openLocalHttp (instance: string, port: string | undefined, req: IncomingMessage): Opened {
    const service = serviceOfInstance(instance)
    const svc = this.c.spec.current()?.spec.services[service]
    const key = svc?.route === undefined ? undefined : keyOf(svc.route, req.headers, req.url ?? '/')
    const admitted = this.admission.admit(service, instance, svc?.admission, key, Date.now())
    if ('refuse' in admitted) return admitted
    const connect = async (): Promise<Socket> => {
      const socket = await this.connectLocal(instance, port)
      this.conns.add(instance, socket)
      return socket
    }
    return { instance, agent: this.upstreams.agentFor({ instance, node: this.c.membership.id }, port, connect), connect, release: admitted.release }
  }

  /** Requests refused at the admission limit, by service, since the node started. */
  admissionRefusals (): Record<string, number> { return admissionRefusalsOf(this.c.membership.id) }

  /** A use no service of the applied spec declares any more: its listener closes. */
  private async closeUnusedListeners (): Promise<void> {
    const applied = this.c.spec.current()
    if (applied === undefined) return
    const declared = new Set(Object.values(applied.spec.services).flatMap((svc) => svc.uses ?? []))
    for (const [key, p] of this.uses) {
      if (declared.has(key)) continue
      this.uses.delete(key)
      const l = await p.catch(() => undefined)
      l?.server.close()
      if (l !== undefined) this.c.log.info(`uses ${key}: no service uses it any more; ${LOOPBACK}:${l.port} closed`)
    }
  }

  /** Close forwarded connections whose target is no longer a ready instance. */
  private sweep (): void {
    const table = this.c.membership.table()
    const ready = new Set<string>()
    const readyAt = new Set<string>()
    for (const m of Object.values(table)) {
      if (m.status !== 'alive' && m.status !== 'suspect') continue
      for (const [id, s] of Object.entries(m.instances ?? {})) if (s.state === 'ready') { ready.add(id); readyAt.add(`${m.id}\0${id}`) }
    }
    this.admission.keepOnly(ready)
    this.upstreams.keepOnly((instance, node) => readyAt.has(`${node}\0${instance}`))
    for (const instance of this.conns.instances()) {
      if (ready.has(instance)) continue
      const n = this.conns.closeAll(instance)
      if (n > 0) this.c.log.info(`closed ${n} forwarded connection${n === 1 ? '' : 's'} to ${instance}: it is no longer ready`)
    }
  }

  private publishesHere (p: PublishSpec): boolean {
    const on = p.on ?? 'every'
    if (on === 'every') return true
    if (on === 'hubs') return this.c.hubs.current().includes(this.c.membership.id)
    const labels = this.c.membership.table()[this.c.membership.id]?.characteristics.labels ?? {}
    return Object.entries(on).every(([k, v]) => labels[k] === v)
  }

  /** Open the published ports this node should listen on, close the others. */
  private reconcilePublished (): void {
    if (!this.running) return
    const want = new Map<number, { service: string, spec: PublishSpec }>()
    for (const [name, svc] of Object.entries(this.c.spec.current()?.spec.services ?? {})) {
      if (svc.publish !== undefined && this.publishesHere(svc.publish) && !want.has(svc.publish.port)) want.set(svc.publish.port, { service: name, spec: svc.publish })
    }
    for (const [port, l] of this.publishes) {
      const w = want.get(port)
      if (w !== undefined && w.service === l.service && w.spec.http === l.spec.http) { l.spec = w.spec; continue }
      this.publishes.delete(port)
      l.server?.close()
      this.c.log.info(`publish: no longer listening on port ${port} for ${l.service}`)
    }
    for (const [port, w] of want) {
      if (this.publishes.has(port)) continue
      const host = hostOf(this.c.membership.address)
      const l: PublishListener = { service: w.service, spec: w.spec, state: 'opening' }
      this.publishes.set(port, l)
      const server = w.spec.http === true
        ? httpPublisher({
          service: () => w.service,
          forwarded: true,
          warn: (line) => this.c.log.warn(`publish ${port}: ${line}`),
          open: async (req) => await this.openHttp(l, req)
        })
        : net.createServer((socket) => {
          socket.on('error', () => {})
          void this.forward(l.service, l.spec.target, socket, `publish ${port}`, false)
        })
      listen(server, port, host).then(() => {
        if (this.publishes.get(port) !== l) { server.close(); return }
        l.server = server
        l.state = 'listening'
        this.c.log.info(`publish: ${w.service} on ${host}:${port}`)
      }, (err: Error & { code?: string }) => {
        l.state = err.code === 'EADDRINUSE'
          ? `cannot publish ${w.service} on ${host}:${port}: the port is already in use on ${this.c.membership.id}`
          : `cannot publish ${w.service} on ${host}:${port}: ${err.message}`
        this.c.log.warn(l.state)
        // Try again on the next change (the port may be freed).
        setTimeout(() => { if (this.publishes.get(port) === l) { this.publishes.delete(port); this.reconcilePublished() } }, 5000).unref()
      })
    }
  }
}

async function listen (server: Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
}

async function connectTcp (host: string, port: number): Promise<Socket> {
  return await new Promise((resolve, reject) => {
    const s = net.connect({ host, port })
    s.once('connect', () => { s.off('error', reject); resolve(s) })
    s.once('error', reject)
  })
}
