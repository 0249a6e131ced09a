/**
 * A protocol table: every method of one surface by name, with the certificate role it
 * needs, whether it answers once or streams, its payload's JSON Schema, and (in the type
 * only) its payload and result types. The node registers a handler with `serve` and a
 * client calls with `call` / `stream`, both against the same table, so a handler whose
 * result is not what the client reads, or a client sending another payload, fails `tsc`.
 *
 * @example
 *   const t = { 'x.ping': unary<undefined, { at: number }>('node') }
 *   serve(transport, t, 'x.ping', () => ({ at: Date.now() }))
 *   const { at } = await call(conn, t, 'x.ping')
 */
import type { CallContext, CallOptions, PeerRole, Transport } from '../transport/types'

interface EntryBase<P, R> {
  role: PeerRole
  /** JSON Schema of the payload, bounded (see `MethodBase.payload`); absent: the method takes none. */
  payload?: object
  /** Types only: never set. */
  readonly __types?: { payload: P, result: R }
}
export interface UnaryEntry<P, R> extends EntryBase<P, R> { kind: 'unary' }
export interface StreamEntry<P, R> extends EntryBase<P, R> { kind: 'stream' }
export type Entry = UnaryEntry<any, any> | StreamEntry<any, any>
export type Table = Record<string, Entry>

/** A method answering once. `P` undefined: it takes no payload (give no schema). */
export function unary<P, R> (role: PeerRole, payload?: object): UnaryEntry<P, R> {
  return payload === undefined ? { kind: 'unary', role } : { kind: 'unary', role, payload }
}
/** A method answering with a stream of `R`. */
export function streamed<P, R> (role: PeerRole, payload?: object): StreamEntry<P, R> {
  return payload === undefined ? { kind: 'stream', role } : { kind: 'stream', role, payload }
}

export type PayloadOf<E> = E extends EntryBase<infer P, any> ? P : never
export type ResultOf<E> = E extends EntryBase<any, infer R> ? R : never
export type UnaryName<T extends Table> = { [K in keyof T & string]: T[K] extends UnaryEntry<any, any> ? K : never }[keyof T & string]
export type StreamName<T extends Table> = { [K in keyof T & string]: T[K] extends StreamEntry<any, any> ? K : never }[keyof T & string]

export type Handler<E> =
  E extends UnaryEntry<infer P, infer R> ? (payload: P, ctx: CallContext) => R | Promise<R>
    : E extends StreamEntry<infer P, infer R> ? (payload: P, ctx: CallContext) => AsyncIterable<R>
      : never

/** A payload argument that may be left out when the method takes none. */
type PayloadArg<E> = undefined extends PayloadOf<E> ? [payload?: PayloadOf<E>] : [payload: PayloadOf<E>]

export interface ServeOptions {
  /** The payload schema for this node, when its bounds come from its config (gossip's). @default the table's */
  payload?: object
}

/** Register `name`'s handler on `transport`, with the role, kind and schema of its table entry. */
export function serve<T extends Table, K extends keyof T & string> (transport: Pick<Transport, 'handle'>, table: T, name: K, handler: Handler<T[K]>, opts: ServeOptions = {}): void {
  const entry = table[name]
  const payload = opts.payload ?? entry.payload
  transport.handle({ kind: entry.kind, name, role: entry.role, ...(payload === undefined ? {} : { payload }), handler: handler as any })
}

/** What `call` and `stream` need of a connection (a `Connection`, or the REPL's `Link`). */
export interface Caller {
  call: (method: string, payload?: unknown, opts?: CallOptions) => Promise<unknown>
}
export interface Streamer {
  stream: (method: string, payload?: unknown) => AsyncIterable<unknown>
}

/** Call a unary method of `table` on `conn`; the result has the table's type. */
export function call<T extends Table, K extends UnaryName<T>> (conn: Caller, table: T, name: K, ...args: [...PayloadArg<T[K]>, opts?: CallOptions]): Promise<ResultOf<T[K]>> {
  void table // the table is there for the types, and to say which surface a call is on
  const [payload, opts] = args as unknown as [unknown, CallOptions | undefined]
  // Not async: the connection's own promise, with no extra turn per call.
  return conn.call(name, payload, opts) as Promise<ResultOf<T[K]>>
}

/** Open a stream of `table`'s method `name` on `conn`. */
export function stream<T extends Table, K extends StreamName<T>> (conn: Streamer, table: T, name: K, ...args: PayloadArg<T[K]>): AsyncIterable<ResultOf<T[K]>> {
  void table
  return conn.stream(name, args[0]) as AsyncIterable<ResultOf<T[K]>>
}

