/**
 * RPC over one frame channel (channel.ts: a websocket, or an in-memory pair): request ids,
 * timeouts, errors with codes, server-to-client streams. Symmetric: either end can call
 * methods the other has registered. A frame that does not decode or breaks the schema
 * closes the connection (the sender is broken or hostile) after saying why; the node goes
 * on serving everyone else. A payload is checked against its method's schema before the
 * handler sees it; a method registered without one takes no payload, and a call that sends
 * one is refused. Error frames are bounded. Its parts: the methods served (router.ts), the
 * caller's waiting calls and deadlines (calls.ts) and streams (reader.ts), handler contexts
 * (serving.ts), frames out within the peer's limits (outbound.ts), traffic (traffic.ts).
 */
import { EventEmitter } from 'node:events'
import { systemClock, type Clock } from '../clock'
import { OriginError, asOriginError } from '../errors'
import type { Logger } from '../log'
import { PendingCalls } from './calls'
import type { FrameChannel } from './channel'
import { clip, decodeFrame, type Frame } from './frames'
import { Outbound } from './outbound'
import { StreamReader, type StreamSink } from './reader'
import type { Route, Router } from './router'
import type { ScanLimits } from './scan'
import { LazyAbort, StreamCall, UnaryCall, isThenable } from './serving'
import type { CallOptions, Connection, Peer, StreamMethod } from './types'

export { Router } from './router'

const BACKPRESSURE_BYTES = 1 << 20

export interface RpcOptions { maxFrameBytes: number, maxFrameElements: number, maxFrameDepth: number, callTimeoutMs: number }

/** Longest text from a peer (an error message) copied into our log lines. */
const LOGGED_CHARS = 500

export class RpcConnection extends EventEmitter implements Connection {
  readonly closed: Promise<void>
  readonly peer: Peer
  private nextId = 1
  private readonly calls: PendingCalls
  private readonly sinks = new Map<number, StreamSink>()
  private readonly serving = new Map<number, LazyAbort>()
  private readonly scan: ScanLimits
  private readonly out: Outbound
  private readonly describe = (): string => this.describePeer()

  constructor (
    private readonly channel: FrameChannel,
    private readonly router: Router,
    private readonly opts: RpcOptions,
    private readonly log: Logger,
    clock: Clock = systemClock
  ) {
    super()
    this.scan = { maxElements: opts.maxFrameElements, maxDepth: opts.maxFrameDepth }
    this.peer = channel.peer
    this.calls = new PendingCalls(clock, this.describe)
    this.out = new Outbound(channel, opts.maxFrameBytes, this.scan, log, this.describe)
    let closed: () => void = () => {}
    this.closed = new Promise((resolve) => { closed = resolve })
    channel.listen({
      frame: (bytes, binary) => this.onMessage(bytes, binary),
      error: (err) => this.log.warn(`connection with ${this.describePeer()}: ${err.message}`),
      close: (code, reason) => { this.onClose(code, reason); closed() }
    })
  }

  get isOpen (): boolean { return this.channel.isOpen }

  call<R = unknown>(method: string, payload?: unknown, opts?: CallOptions): Promise<R> {
    if (!this.isOpen) return Promise.reject(new OriginError('E_CLOSED', `connection to ${this.describePeer()} is closed`))
    const id = this.takeId()
    let sent: number
    try {
      // No payload, no `p` key: fewer bytes to encode, scan and decode on every such call.
      sent = this.out.send(payload === undefined ? { t: 'req', id, m: method } : { t: 'req', id, m: method, p: payload })
    } catch (err) {
      return Promise.reject(err)
    }
    this.router.traffic.count(method, 'sent', sent)
    return this.calls.add<R>(id, method, opts?.timeoutMs ?? this.opts.callTimeoutMs)
  }

  stream<R = unknown>(method: string, payload?: unknown): AsyncIterable<R> {
    return { [Symbol.asyncIterator]: () => this.openStream<R>(method, payload) }
  }

  close (reason = 'closed'): void {
    this.channel.close(1000, reason.slice(0, 120))
  }

  /** Close at once, without a closing handshake (a revoked peer, a broken one). */
  terminate (): void { this.channel.terminate() }

  describePeer (): string {
    return `${this.peer.role} ${this.peer.name} at ${this.peer.remote}`
  }

  private openStream<R>(method: string, payload: unknown): AsyncIterator<R> {
    const id = this.takeId()
    const reader = new StreamReader<R>(() => this.sinks.delete(id), () => { if (this.isOpen) this.out.send({ t: 'cancel', id }) })
    this.sinks.set(id, reader)
    if (!this.isOpen) reader.fail(new OriginError('E_CLOSED', `connection to ${this.describePeer()} is closed`))
    else {
      try { this.out.send({ t: 'req', id, m: method, p: payload }) } catch (err) { reader.fail(err as Error) }
    }
    return reader
  }

  private takeId (): number {
    const id = this.nextId
    this.nextId = this.nextId >= 2 ** 32 ? 1 : this.nextId + 1
    return id
  }

  private onMessage (data: Buffer, isBinary: boolean): void {
    let frame: Frame
    try {
      if (!isBinary) throw new OriginError('E_FRAME_INVALID', 'text message where a binary msgpack frame was expected')
      frame = decodeFrame(data, this.opts.maxFrameBytes, this.scan)
    } catch (err) {
      const e = asOriginError(err)
      this.log.warn(`refused a frame from ${this.describePeer()}: ${e.message}; closing the connection`)
      this.out.send({ t: 'err', id: 0, e: e.toJSON() })
      this.channel.close(1002, e.code)
      return
    }
    switch (frame.t) {
      case 'req': this.serve(frame.id, frame.m, frame.p, data.length); break
      case 'res': {
        const call = this.calls.take(frame.id)
        if (call === undefined) break // timed out already
        this.router.traffic.count(call.method, 'received', data.length)
        call.resolve(frame.v)
        break
      }
      case 'err': this.onError(frame.id, OriginError.fromJSON(frame.e)); break
      case 'item': this.sinks.get(frame.id)?.push(frame.v); break
      case 'end': this.sinks.get(frame.id)?.end(); break
      case 'cancel': this.serving.get(frame.id)?.abort(); break
    }
  }

  private onError (id: number, err: OriginError): void {
    if (id === 0) { this.log.warn(`${this.describePeer()} refused our frame: ${clip(err.message, LOGGED_CHARS)}`); return }
    const sink = this.sinks.get(id)
    if (sink !== undefined) sink.fail(err)
    else this.calls.fail(id, err)
  }

  /**
   * Answers a request. A unary handler that returns a plain value is answered in the same
   * turn, and one that returns a promise when it settles: no async frame, no abort
   * controller and no entry in `serving` per call unless the handler reads `ctx.signal`.
   */
  private serve (id: number, name: string, payload: unknown, bytes: number): void {
    const route = this.router.get(name)
    if (route === undefined) {
      this.router.traffic.count(name, 'received', bytes)
      this.fail(id, name, new OriginError('E_UNKNOWN_METHOD', `no method "${name}"`, { method: name }))
      return
    }
    const method = route.method
    const t = this.router.trafficOf(route)
    if (t !== undefined) t.received += bytes
    let p: unknown
    try {
      if (method.role !== this.peer.role) {
        this.log.warn(`refused ${name} from ${this.describePeer()}: needs role ${method.role}, certificate has role ${this.peer.role}`)
        throw new OriginError('E_FORBIDDEN_ROLE', `${name} needs ${method.role === 'operator' ? 'an' : 'a'} ${method.role} certificate; yours has role ${this.peer.role}`, { method: name, need: method.role, have: this.peer.role })
      }
      p = route.check(payload)
    } catch (err) {
      this.fail(id, name, err)
      return
    }
    if (method.kind === 'stream') { void this.serveStream(id, name, method, p); return }
    const call = new UnaryCall(this, this.serving, id)
    let result: unknown
    try {
      result = method.handler(p, call)
    } catch (err) {
      call.done()
      this.fail(id, name, err)
      return
    }
    if (isThenable(result)) result.then((v) => this.answer(id, route, v, call), (err) => { call.done(); this.fail(id, name, err) })
    else this.answer(id, route, result, call)
  }

  private answer (id: number, route: Route, v: unknown, call: UnaryCall): void {
    call.done()
    let sent: number
    try {
      sent = this.out.send(v === undefined ? { t: 'res', id } : { t: 'res', id, v })
    } catch (err) {
      this.fail(id, route.method.name, err) // an answer that cannot be encoded
      return
    }
    const t = this.router.trafficOf(route)
    if (t !== undefined) t.sent += sent
  }

  /** Tells the caller why call `id` failed (errors from the handler or the checks before it). */
  private fail (id: number, name: string, err: unknown): void {
    const e = asOriginError(err, name)
    if (e.code === 'E_INTERNAL') this.log.error(`${name} failed for ${this.describePeer()}: ${clip(e.message, LOGGED_CHARS)}`)
    try {
      this.out.send({ t: 'err', id, e: e.toJSON() })
    } catch (sendErr) {
      this.log.error(`could not tell ${this.describePeer()} that ${name} failed: ${clip(asOriginError(sendErr).message, LOGGED_CHARS)}`)
    }
  }

  private async serveStream (id: number, name: string, method: StreamMethod<unknown, unknown>, p: unknown): Promise<void> {
    const ctx = new StreamCall(this.peer)
    this.serving.set(id, ctx.abort)
    try {
      for await (const v of method.handler(p, ctx)) {
        if (ctx.abort.aborted || !this.isOpen) break
        this.out.send({ t: 'item', id, v })
        if (this.channel.bufferedAmount > BACKPRESSURE_BYTES) await this.drained()
      }
      this.out.send({ t: 'end', id })
    } catch (err) {
      this.fail(id, name, err)
    } finally {
      this.serving.delete(id)
    }
  }

  /**
   * Waits for bytes to leave the channel. Real time on purpose: it paces a socket's (or the
   * in-memory queue's) draining, which virtual time does not move.
   */
  private async drained (): Promise<void> {
    while (this.isOpen && this.channel.bufferedAmount > BACKPRESSURE_BYTES / 2) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  private onClose (code: number, reason: string): void {
    const err = new OriginError('E_CLOSED', `connection to ${this.describePeer()} closed (${code}${reason ? ' ' + reason : ''})`)
    this.calls.failAll(err)
    for (const sink of this.sinks.values()) sink.fail(err)
    for (const c of this.serving.values()) c.abort()
    this.emit('close', code, reason)
  }
}
