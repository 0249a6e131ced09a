/**
 * transport: one TLS port per node, mutual TLS 1.3 (client certificate required and
 * verified against the cluster CA), websockets carrying msgpack frames, RPC with request
 * ids, timeouts, coded errors and server-to-client streams. RPC (rpc.ts) runs over a
 * frame channel (channel.ts), so other transports (plugins/transport-memory) reuse it and
 * pass the same compliance suite (test/transport-compliance.test.ts). Every bound (frame
 * bytes and values, handshake time, unauthenticated and total connections) is in config.ts
 * with its trade-off; refused connections are logged as counted summaries (refusals.ts).
 * Its time is its `clock` component: call deadlines, handshake limits and refusal summaries
 * follow a VirtualClock in one-process clusters.
 *
 * @example
 *   const t = webSocketTransport({ listen: '127.0.0.1:7400' })({ identity, log })
 *   t.handle({ kind: 'unary', name: 'mesh.ping', role: 'node', handler: () => 'pong' })
 *   await t.start()
 *   const conn = await t.connect('127.0.0.2:7400')
 *   await conn.call('mesh.ping')   // 'pong'
 */
import type { Traffic } from './traffic'
import { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import https from 'node:https'
import { isIP, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import tls, { type TLSSocket } from 'node:tls'
import { WebSocketServer } from 'ws'
import { systemClock, type Clock } from '../clock'
import { OriginError, errorMessage } from '../errors'
import { normalizeSerial } from '../keys/read'
import { silentLogger, type Logger } from '../log'
import { dial, describeSocketError, PATH } from './dial'
import { splitAddress } from '../address'
import { Admission } from './admission'
import { closeGrace, clientConfig, transportConfig, type TransportConfig, type TransportInit } from './config'
import { wsChannel } from './channel'
import { peerOf, remoteOf } from './peer'
import { ConnectionPool } from './pool'
import { RefusalLog } from './refusals'
import { RpcConnection, Router } from './rpc'
import type { Connection, HttpHandler, Method, Transport, TransportComponents } from './types'

export type { Connection, Method, Peer, PeerRole, CallContext, Transport, TransportComponents, UnaryMethod, StreamMethod, HttpHandler, HttpRequest } from './types'
export { transportDefaults, errorFrameBounds, type TransportInit } from './config'
export type { FrameChannel, ChannelEvents } from './channel'

const MAX_HTTP_BODY = 1 << 20


/** Remote addresses by raw socket: a TLS socket that failed its handshake no longer knows its peer. */
const remotes = new WeakMap<object, string>()

/** The TCP socket under a server-side TLS socket (what the admission counts). */
function rawOf (socket: object): Socket {
  return ((socket as { _parent?: Socket })._parent ?? socket) as Socket
}

/** How a failed TLS handshake is counted in the refusal summary. */
function tlsFailureKind (err: Error & { code?: string }): string {
  if (err.code === 'ECONNRESET') return 'reset during the TLS handshake'
  if (err.code?.includes('UNKNOWN_CA') === true) return "client does not trust this cluster's CA"
  return 'failed TLS handshake'
}

export function webSocketTransport (init: TransportInit) {
  return (components: TransportComponents): Transport => new WebSocketTransport(init, components)
}

class WebSocketTransport implements Transport {
  readonly events = new EventEmitter()
  private readonly router = new Router()
  private readonly routes = new Map<string, HttpHandler>()
  private readonly pool = new ConnectionPool(async (address) => await this.connect(address))
  private readonly opts: TransportConfig
  private readonly connections = new Set<RpcConnection>()
  private readonly refusals: RefusalLog
  private admission?: Admission
  private revoked = new Set<string>()
  private readonly context: tls.SecureContext
  private server?: https.Server
  private wss?: WebSocketServer
  private bound = ''
  private readonly clock: Clock

  constructor (init: TransportInit, private readonly c: TransportComponents) {
    this.opts = transportConfig(init)
    this.clock = c.clock ?? systemClock
    this.refusals = new RefusalLog(c.log, this.opts.refusalLogIntervalMs, this.clock)
    // One secure context per identity, reused by every outbound connection.
    this.context = tls.createSecureContext({ key: c.identity.key, cert: c.identity.cert, ca: c.identity.ca, minVersion: 'TLSv1.3' })
  }

  get address (): string { return this.bound }

  handle (method: Method): void { this.router.add(method) }

  route (method: string, path: string, handler: HttpHandler): void {
    this.routes.set(`${method.toUpperCase()} ${path}`, handler)
  }

  /**
   * A node listening on one IP address dials from it too, so its peers (and their
   * firewalls) see one address per node. A wildcard listener lets the OS choose.
   */
  private sourceAddress (): string | undefined {
    const host = splitAddress(this.opts.listen).host
    return isIP(host) !== 0 && host !== '0.0.0.0' && host !== '::' ? host : undefined
  }

  async peer (address: string): Promise<Connection> { return await this.pool.get(address) }

  private async serveHttp (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const remote = remoteOf(req.socket as TLSSocket)
    const handler = this.routes.get(`${req.method ?? ''} ${(req.url ?? '').split('?')[0]}`)
    if (handler === undefined) { res.writeHead(404, { 'content-type': 'text/plain' }).end('origin: no such route\n'); return }
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of req) {
        size += (chunk as Buffer).length
        if (size > MAX_HTTP_BODY) throw new OriginError('E_PAYLOAD_INVALID', `request body over ${MAX_HTTP_BODY} bytes`)
        chunks.push(chunk as Buffer)
      }
      const out = await handler({ headers: req.headers, body: Buffer.concat(chunks), remote })
      res.writeHead(out.status, { 'content-type': 'text/plain' }).end(out.body + '\n')
    } catch (err) {
      this.c.log.warn(`${req.method ?? ''} ${req.url ?? ''} from ${remote} failed: ${errorMessage(err)}`)
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' }).end(errorMessage(err) + '\n')
    }
  }

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

  async start (): Promise<void> {
    if (this.server !== undefined) return
    const { host, port } = splitAddress(this.opts.listen)
    const server = https.createServer({
      key: this.c.identity.key,
      cert: this.c.identity.cert,
      ca: this.c.identity.ca,
      // The certificate is checked per request rather than at the handshake, so a refused
      // peer hears why (and the log says it) instead of seeing a reset connection.
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3'
    }, (req, res) => { admission.request(rawOf(req.socket)); void this.serveHttp(req, res) })
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.opts.maxFrameBytes, perMessageDeflate: false })
    const admission = new Admission(this.opts, (socket, kind, why) => {
      this.refusals.refused(kind, `refused a connection from ${remotes.get(socket) ?? '?'}: ${why}`)
    }, this.clock)
    // Beyond this Node closes new connections itself and says so with 'drop'.
    server.maxConnections = this.opts.maxConnections
    server.on('drop', (d?: { remoteAddress?: string, remotePort?: number }) => {
      this.refusals.refused('too many connections', `refused a connection from ${d?.remoteAddress ?? '?'}:${d?.remotePort ?? '?'}: ${this.opts.maxConnections} connections are open (the limit)`)
    })
    server.on('connection', (socket: Socket) => {
      remotes.set(socket, `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`)
      admission.admit(socket)
    })
    server.on('tlsClientError', (err, socket) => {
      const raw = rawOf(socket)
      if (admission.closedByUs(raw)) return // already told: a timeout or a limit
      const remote = remotes.get(raw) ?? remoteOf(socket)
      this.refusals.refused(tlsFailureKind(err), `refused a TLS connection from ${remote}: ${describeSocketError(err)}`)
    })
    server.on('upgrade', (req, socket, head) => this.onUpgrade(wss, admission, req, socket, head))
    server.on('clientError', (err, socket) => { socket.destroy(); this.c.log.debug(`bad HTTP from a client: ${err.message}`) })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve() })
    })
    const a = server.address()
    this.bound = typeof a === 'object' && a !== null ? `${host}:${a.port}` : this.opts.listen
    this.server = server
    this.wss = wss
    this.admission = admission
    this.c.log.info(`listening on ${this.bound} (mutual TLS 1.3, cluster ${this.c.identity.cluster})`)
  }

  async stop (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    this.pool.clear()
    this.admission?.stop()
    this.refusals.stop()
    for (const conn of this.connections) conn.close('node stopping')
    await Promise.race([
      Promise.all([...this.connections].map((c) => c.closed)),
      closeGrace()
    ])
    for (const conn of this.connections) conn.terminate()
    this.wss?.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
  }

  async connect (address: string, opts: { timeoutMs?: number } = {}): Promise<Connection> {
    const conn = await dial({
      ...this.opts,
      address,
      context: this.context,
      cluster: this.c.identity.cluster,
      revoked: this.revoked,
      router: this.router,
      timeoutMs: opts.timeoutMs ?? this.opts.connectTimeoutMs,
      log: this.c.log,
      clock: this.clock,
      localAddress: this.sourceAddress()
    })
    return this.track(conn)
  }

  private onUpgrade (wss: WebSocketServer, admission: Admission, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const tlsSocket = socket as TLSSocket
    try {
      if (req.url !== PATH) throw new OriginError('E_NOT_FOUND', `unknown path ${(req.url ?? '').slice(0, 200)}`, { kind: 'unknown path' })
      const peer = peerOf(tlsSocket, this.c.identity.cluster, this.revoked)
      wss.handleUpgrade(req, socket, head, (ws) => {
        admission.authenticated(rawOf(tlsSocket))
        const conn = this.track(new RpcConnection(wsChannel(ws, peer, tlsSocket), this.router, this.opts, this.c.log, this.clock))
        this.c.log.debug(`accepted ${conn.describePeer()}`)
        this.events.emit('connection', conn)
      })
    } catch (err) {
      const kind = err instanceof OriginError && typeof err.data.kind === 'string' ? err.data.kind : 'refused'
      this.refusals.refused(kind, `refused a connection from ${remoteOf(tlsSocket)}: ${errorMessage(err)}`)
      socket.end(`HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${errorMessage(err)}\n`)
      socket.destroy()
    }
  }

  private track (conn: RpcConnection): RpcConnection {
    this.connections.add(conn)
    conn.once('close', () => this.connections.delete(conn))
    return conn
  }
}


/** Open one client connection to a node without serving anything: what the REPL uses. */
export async function connectTo (
  address: string,
  identity: TransportComponents['identity'],
  opts: Partial<Omit<TransportInit, 'listen'>> & { log?: Logger, clock?: Clock } = {}
): Promise<Connection> {
  const { log, clock, ...init } = opts
  const o = clientConfig(init)
  return await dial({
    ...o,
    address,
    context: tls.createSecureContext({ key: identity.key, cert: identity.cert, ca: identity.ca, minVersion: 'TLSv1.3' }),
    cluster: identity.cluster,
    revoked: new Set(),
    router: new Router(),
    timeoutMs: o.connectTimeoutMs,
    log: log ?? silentLogger,
    clock
  })
}
