/**
 * transport-memory: the transport contract (node/transport/types.ts) without sockets, so a
 * whole cluster runs in one process. Nodes of one test share a `MemoryNetwork`; addresses
 * are names (`mem-1:7400`). A connection carries the same msgpack frames through the same
 * RPC code (scanned, validated, bounded) as the websocket transport; certificates are read
 * and checked against the CA, then by role, cluster and revocation as the real one does.
 * Not simulated: TLS, admission limits and plain HTTPS routes (`route` registers, nothing
 * serves).
 *
 * @example
 *   const net = memoryNetwork()
 *   const a = net.transport({ listen: 'mem-1:7400' })({ identity, log })
 *   const b = net.transport({ listen: 'mem-2:7400' })({ identity, log })
 *   a.handle({ kind: 'unary', name: 'mesh.ping', role: 'node', handler: () => 'pong' })
 *   await a.start(); await b.start()
 *   await (await b.connect('mem-1:7400')).call('mesh.ping')   // 'pong'
 *   // a cluster: startNode({ config, keys, layers: { transport: net.transport } })
 *   // or in image.json: "layers": { "transport": { "use": "transport-memory", "config": { "network": "t1" } } }
 */
import type { Traffic } from '../../node/transport/traffic'
import { EventEmitter } from 'node:events'
import { systemClock, type Clock } from '../../node/clock'
import { OriginError } from '../../node/errors'
import { normalizeSerial } from '../../node/keys/read'
import { silentLogger, type Logger } from '../../node/log'
import { closeGrace, clientConfig, transportConfig, type TransportConfig, type TransportInit } from '../../node/transport/config'
import { splitAddress } from '../../node/address'
import type { TransportComponents } from '../../node/transport'
import { checkPeer } from '../../node/transport/peer'
import { ConnectionPool } from '../../node/transport/pool'
import { RefusalLog } from '../../node/transport/refusals'
import { RpcConnection, Router } from '../../node/transport/rpc'
import type { FrameChannel } from '../../node/transport/channel'
import type { Connection, HttpHandler, Method, Peer, Transport } from '../../node/transport/types'
import { MemoryEnd } from './channel'
import { certified, refused } from './identity'

type Identity = TransportComponents['identity']

/** The in-process network the nodes of one test share. */
export class MemoryNetwork {
  private readonly listeners = new Map<string, MemoryTransport>()
  private readonly cut = new Set<string>()
  private nextPort = 40000

  /** A transport factory on this network, of the same shape as `webSocketTransport`. */
  readonly transport = (init: TransportInit) => (components: TransportComponents): Transport => new MemoryTransport(this, init, components)

  /** Addresses listening now. */
  get addresses (): string[] { return [...this.listeners.keys()] }

  /**
   * Cut `address` off the network, as a pulled cable: its connections drop at once (both
   * ends see code 1006) and dials to or from it fail until `reconnect`.
   */
  disconnect (address: string): void {
    this.cut.add(address)
    this.listeners.get(address)?.dropAll()
  }

  reconnect (address: string): void { this.cut.delete(address) }

  /** A client connection from outside any node (what `connectTo` is for the REPL). */
  async connect (address: string, identity: Identity, opts: Partial<Omit<TransportInit, 'listen'>> & { from?: string, log?: Logger, clock?: Clock } = {}): Promise<Connection> {
    const { from, log, clock, ...init } = opts
    return await this.dial(address, { identity, router: new Router(), opts: clientConfig(init), log: log ?? silentLogger, revoked: new Set(), host: from ?? 'mem-client', clock: clock ?? systemClock }) as RpcConnection
  }

  /**
   * A bare frame channel to `address` as a node with `identity`, with no RPC on this end:
   * for tests that send bytes no RpcConnection would.
   */
  async rawConnect (address: string, identity: Identity): Promise<FrameChannel> {
    let channel: FrameChannel | undefined
    await this.dial(address, { identity, router: new Router(), opts: clientConfig({}), log: silentLogger, revoked: new Set(), host: 'mem-raw', clock: systemClock, raw: (end) => { channel = end } })
    return channel as FrameChannel
  }

  /** @internal */
  bind (t: MemoryTransport, listen: string): string {
    const { host, port } = splitAddress(listen)
    const address = `${host}:${port === 0 ? this.nextPort++ : port}`
    if (this.listeners.has(address)) throw new OriginError('E_UNREACHABLE', `${address} is already in use on this memory network`, { address })
    this.listeners.set(address, t)
    return address
  }

  /** @internal */
  unbind (address: string): void { this.listeners.delete(address) }

  /** @internal Open a connection: each end checks the other's certificate as mutual TLS and peerOf would. */
  async dial (address: string, from: { identity: Identity, router: Router, opts: Omit<TransportConfig, 'listen'>, log: Logger, revoked: ReadonlySet<string>, host: string, clock: Clock, address?: string, raw?: (end: MemoryEnd) => void }): Promise<RpcConnection | undefined> {
    await new Promise((resolve) => setImmediate(resolve))
    if (this.cut.has(address) || (from.address !== undefined && this.cut.has(from.address))) {
      throw new OriginError('E_UNREACHABLE', `cannot connect to ${address}: connection timed out (network cut)`, { address })
    }
    const server = this.listeners.get(address)
    if (server === undefined) throw new OriginError('E_UNREACHABLE', `cannot connect to ${address}: connection refused (nothing listening)`, { address })
    const remote = `${from.host}:${this.nextPort++}`
    // The server's view of the client: refused ones are counted there, as the real one does.
    const clientPeer = server.admit(from.identity, remote)
    if (clientPeer instanceof OriginError) throw new OriginError('E_UNREACHABLE', `${address} refused us: ${clientPeer.message}`, { address })
    let serverPeer: Peer
    try {
      const c = certified({ ca: from.identity.ca, cert: server.cert })
      if (c.refusal !== undefined) throw refused(c, address)
      serverPeer = checkPeer({ ...c.claimed, remote: address }, from.identity.cluster, from.revoked)
      if (serverPeer.role !== 'node') throw new OriginError('E_FORBIDDEN_ROLE', `it presented a ${serverPeer.role} certificate, not a node certificate`)
    } catch (err) {
      throw new OriginError('E_UNREACHABLE', `refused ${address}: ${(err as Error).message}`, { address })
    }
    const [clientEnd, serverEnd] = MemoryEnd.pair(serverPeer, clientPeer)
    clientEnd.maxPayload = from.opts.maxFrameBytes
    serverEnd.maxPayload = server.maxFrameBytes
    server.accept(serverEnd)
    if (from.raw !== undefined) { from.raw(clientEnd); return undefined }
    return new RpcConnection(clientEnd, from.router, from.opts, from.log, from.clock)
  }
}

export function memoryNetwork (): MemoryNetwork { return new MemoryNetwork() }

const named = new Map<string, MemoryNetwork>()

/** The network called `name` in this process, made on first use (what image.json's `network` names). */
export function namedNetwork (name: string): MemoryNetwork {
  let net = named.get(name)
  if (net === undefined) { net = memoryNetwork(); named.set(name, net) }
  return net
}

/**
 * The plugin entry image.json's `layers.transport: { "use": "transport-memory" }` loads:
 * nodes started in one process with the same `network` (default "default") reach each other.
 */
export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    /** Which in-process network to join. @default "default" */
    network: { type: 'string', minLength: 1, maxLength: 100 }
  }
}

export function transport (init: TransportInit & { network?: string }) {
  const { network, ...rest } = init
  return namedNetwork(network ?? 'default').transport(rest)
}

/** `memoryTransport({ listen, network })`: the factory with its network named in its init. */
export function memoryTransport (init: TransportInit & { network: MemoryNetwork }) {
  const { network, ...rest } = init
  return network.transport(rest)
}

class MemoryTransport implements Transport {
  readonly events = new EventEmitter()
  private readonly router = new Router()
  private readonly routes = new Map<string, HttpHandler>()
  private readonly connections = new Set<RpcConnection>()
  private readonly pool = new ConnectionPool(async (address) => await this.connect(address))
  private readonly opts: TransportConfig
  private readonly refusals: RefusalLog
  private revoked = new Set<string>()
  private bound = ''
  private readonly clock: Clock

  constructor (private readonly net: MemoryNetwork, init: TransportInit, private readonly c: TransportComponents) {
    this.opts = transportConfig(init)
    this.clock = c.clock ?? systemClock
    this.refusals = new RefusalLog(c.log, this.opts.refusalLogIntervalMs, this.clock)
  }

  get address (): string { return this.bound }
  get cert (): string { return this.c.identity.cert }
  get maxFrameBytes (): number { return this.opts.maxFrameBytes }

  handle (method: Method): void { this.router.add(method) }
  route (method: string, path: string, handler: HttpHandler): void { this.routes.set(`${method.toUpperCase()} ${path}`, handler) }

  async start (): Promise<void> {
    if (this.bound !== '') return
    this.bound = this.net.bind(this, this.opts.listen)
    this.c.log.info(`listening on ${this.bound} (in-memory network, cluster ${this.c.identity.cluster})`)
  }

  async stop (): Promise<void> {
    if (this.bound === '') return
    this.net.unbind(this.bound)
    this.bound = ''
    this.pool.clear()
    this.refusals.stop()
    for (const conn of this.connections) conn.close('node stopping')
    await Promise.race([Promise.all([...this.connections].map((c) => c.closed)), closeGrace()])
    for (const conn of this.connections) conn.terminate()
  }

  async connect (address: string): Promise<Connection> {
    if (this.bound === '') throw new OriginError('E_CLOSED', 'this transport is not started')
    const conn = await this.net.dial(address, { identity: this.c.identity, router: this.router, opts: this.opts, log: this.c.log, revoked: this.revoked, host: splitAddress(this.bound).host, clock: this.clock, address: this.bound })
    return this.track(conn as RpcConnection)
  }

  async peer (address: string): Promise<Connection> { return await this.pool.get(address) }

  traffic (method: string): Readonly<Traffic> | undefined { return this.router.traffic.get(method) }

  setRevoked (serials: Iterable<string>): void {
    this.revoked = new Set([...serials].map(normalizeSerial))
    for (const conn of this.connections) {
      if (this.revoked.has(conn.peer.serial)) {
        this.c.log.warn(`dropping ${conn.describePeer()}: certificate serial ${conn.peer.serial} is revoked`)
        conn.terminate()
      }
    }
  }

  /** @internal Drop every connection at once (the network was cut). */
  dropAll (): void { for (const conn of this.connections) conn.terminate() }

  /** @internal The peer a client with `identity` is, or why it is refused (logged here). */
  admit (identity: Identity, remote: string): Peer | OriginError {
    try {
      const c = certified({ ca: this.c.identity.ca, cert: identity.cert })
      if (c.refusal !== undefined) throw refused(c, remote)
      return checkPeer({ ...c.claimed, remote }, this.c.identity.cluster, this.revoked)
    } catch (err) {
      const e = err as OriginError
      // Counted like the websocket transport's refusals: one line per kind, then summaries.
      this.refusals.refused(typeof e.data?.kind === 'string' ? e.data.kind : 'refused', `refused a connection from ${remote}: ${e.message}`)
      return e
    }
  }

  /** @internal */
  accept (end: MemoryEnd): void {
    const conn = this.track(new RpcConnection(end, this.router, this.opts, this.c.log, this.clock))
    this.c.log.debug(`accepted ${conn.describePeer()}`)
    this.events.emit('connection', conn)
  }

  private track (conn: RpcConnection): RpcConnection {
    this.connections.add(conn)
    conn.once('close', () => this.connections.delete(conn))
    return conn
  }
}
