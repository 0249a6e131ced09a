/** The transport's interface, as the other layers see it. */
import type { EventEmitter } from 'node:events'
import type { Clock } from '../clock'
import type { Logger } from '../log'
import type { Traffic } from './traffic'

export type PeerRole = 'node' | 'operator'

/** Who is on the other end, from its verified certificate. */
export interface Peer {
  role: PeerRole
  cluster: string
  /** The certificate's CN. */
  name: string
  /** Certificate serial, normalized (uppercase hex). */
  serial: string
  /** Remote host:port of the connection. */
  remote: string
}

export interface CallContext {
  peer: Peer
  /** Aborted when the connection closes or the caller cancels a stream. */
  signal: AbortSignal
}

interface MethodBase<P> {
  name: string
  /** The certificate role a caller needs. */
  role: PeerRole
  /**
   * JSON Schema for the payload (ajv), checked before the handler runs (first error only).
   * Omit it for a method that takes no payload: a call that sends one anyway (anything but
   * undefined or nil) is refused with E_PAYLOAD_INVALID. Bound every string, array and map
   * in it (maxLength, maxItems, maxProperties): the frame limits bound what a payload costs
   * to decode, the schema what it may make the handler do.
   */
  payload?: object
  /** Tells the type checker what the schema guarantees. */
  readonly __payload?: P
}

export interface UnaryMethod<P, R> extends MethodBase<P> {
  kind: 'unary'
  handler: (payload: P, ctx: CallContext) => Promise<R> | R
}

export interface StreamMethod<P, R> extends MethodBase<P> {
  kind: 'stream'
  handler: (payload: P, ctx: CallContext) => AsyncIterable<R>
}

export type Method = UnaryMethod<any, any> | StreamMethod<any, any>

export interface CallOptions {
  /** @default the transport's `callTimeoutMs` */
  timeoutMs?: number
}

export interface Connection extends EventEmitter {
  readonly peer: Peer
  readonly isOpen: boolean
  call<R = unknown>(method: string, payload?: unknown, opts?: CallOptions): Promise<R>
  stream<R = unknown>(method: string, payload?: unknown): AsyncIterable<R>
  close (reason?: string): void
  /** Resolves once the connection has closed, for whatever reason. */
  readonly closed: Promise<void>
}

/** A plain HTTPS request on the mesh port (webhooks): no client certificate; the handler authenticates it. */
export interface HttpRequest { headers: Record<string, string | string[] | undefined>, body: Buffer, remote: string }
export type HttpHandler = (req: HttpRequest) => Promise<{ status: number, body: string }>

export interface Transport {
  start (): Promise<void>
  stop (): Promise<void>
  /** The address actually listened on (host:port), after start. */
  readonly address: string
  /** Register a method callers may invoke. Names are unique. */
  handle (method: Method): void
  /** Serve `method path` over plain HTTPS on the same port (bodies up to 1 MiB). */
  route (method: string, path: string, handler: HttpHandler): void
  /** Open a connection to another node (must present a `node` certificate of this cluster). */
  connect (address: string, opts?: { timeoutMs?: number }): Promise<Connection>
  /** A pooled connection to another node: reused while open, reopened when closed. Do not close it. */
  peer (address: string): Promise<Connection>
  /** Certificate serials to refuse; connections already open with them are dropped. */
  setRevoked (serials: Iterable<string>): void
  /** Bytes of unary calls of `method` on this transport's connections, each way (undefined: none yet). */
  traffic (method: string): Readonly<Traffic> | undefined
  /** Emits 'connection' (Connection) for each accepted inbound connection. */
  readonly events: EventEmitter
}

/** What a transport needs from the node it serves. */
export interface TransportComponents {
  identity: { ca: string, cert: string, key: string, cluster: string }
  log: Logger
  /** Call deadlines, handshake limits and refusal summaries run on it. @default systemClock */
  clock?: Clock
}
