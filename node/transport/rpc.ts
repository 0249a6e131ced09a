/**
 * RPC over one frame channel (channel.ts: a websocket, or an in-memory pair): request ids, timeouts, errors with codes, server-to-client
 * streams. Symmetric: either end can call methods the other has registered. A frame that
 * does not decode or breaks the schema closes the connection (the sender is broken or
 * hostile) after saying why; the node goes on serving everyone else. A payload is checked
 * against its method's schema before the handler sees it; a method registered without one
 * takes no payload, and a call that sends one is refused. Error frames are bounded.
 */
import { EventEmitter } from 'node:events'
import { OriginError, asOriginError } from '../errors'
import type { Logger } from '../log'
import { validator, type Check } from '../validate'
import type { FrameChannel } from './channel'
import { DeadlineTimer, monotonicMs } from './deadlines'
import { boundedError, clip, decodeFrame, encodeFrame, type Frame } from './frames'
import { scanMsgpack, type ScanLimits } from './scan'
import type { CallContext, CallOptions, Connection, Method, Peer, StreamMethod } from './types'

export class Router {
  private readonly methods = new Map<string, { method: Method, check: Check<unknown> }>()

  add (method: Method): void {
    if (this.methods.has(method.name)) throw new Error(`method ${method.name} is registered twice`)
    // First error only: a peer's invalid payload should not cost more to report than to send.
    const check = method.payload === undefined ? noPayload(method.name) : validator<unknown>(method.payload, `payload of ${method.name}`, 'E_PAYLOAD_INVALID', { firstError: true })
    this.methods.set(method.name, { method, check })
  }

  get (name: string): { method: Method, check: Check<unknown> } | undefined {
    return this.methods.get(name)
  }
}

/** The check of a method without a payload schema: nothing (or nil) is all it takes. */
function noPayload (name: string): Check<unknown> {
  return (payload: unknown) => {
    if (payload === undefined || payload === null) return undefined
    const got = Array.isArray(payload) ? 'an array' : typeof payload === 'object' ? 'an object' : `a ${typeof payload}`
    throw new OriginError('E_PAYLOAD_INVALID', `${name} takes no payload, and this call sent ${got}`, { method: name })
  }
}

interface Pending { resolve (v: unknown): void, reject (e: Error): void, method: string, deadline: number, timeoutMs: number }

/**
 * Bytes of unary calls by method in this process, requests and answers together, each way
 * (what `cluster.stats()` shows as gossip traffic). Streams are not counted.
 */
export const trafficByMethod = new Map<string, { sent: number, received: number }>()

function countTraffic (method: string, way: 'sent' | 'received', bytes: number): void {
  let t = trafficByMethod.get(method)
  if (t === undefined) {
    if (trafficByMethod.size >= 256) return // method names come from peers too: bounded
    t = { sent: 0, received: 0 }
    trafficByMethod.set(method, t)
  }
  t[way] += bytes
}
interface StreamSink { push (v: unknown): void, end (): void, fail (e: Error): void }

const BACKPRESSURE_BYTES = 1 << 20

/**
 * An AbortController made only when a handler asks for the signal: creating one per call
 * was the largest cost of a small RPC.
 */
class LazyAbort {
  private controller?: AbortController
  private abortedEarly = false
  get signal (): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController()
      if (this.abortedEarly) this.controller.abort()
    }
    return this.controller.signal
  }

  get aborted (): boolean { return this.controller?.signal.aborted ?? this.abortedEarly }
  abort (): void {
    if (this.controller === undefined) this.abortedEarly = true
    else this.controller.abort()
  }
}

/**
 * A unary call's context: its abort signal is made (and watched in `serving`) only if the
 * handler asks for it. A class, not an object literal with a getter: one of those per call
 * was a twentieth of the node's time under load.
 */
class UnaryCall implements CallContext {
  private abort?: LazyAbort
  readonly peer: Peer

  constructor (private readonly conn: { readonly peer: Peer, readonly isOpen: boolean }, private readonly serving: Map<number, LazyAbort>, private readonly id: number) {
    this.peer = conn.peer
  }

  get signal (): AbortSignal {
    if (this.abort === undefined) {
      this.abort = new LazyAbort()
      // Asked after the connection closed: it would have been aborted with the rest.
      if (this.conn.isOpen) this.serving.set(this.id, this.abort)
      else this.abort.abort()
    }
    return this.abort.signal
  }

  done (): void {
    if (this.abort !== undefined && this.serving.get(this.id) === this.abort) this.serving.delete(this.id)
  }
}

export interface RpcOptions { maxFrameBytes: number, maxFrameElements: number, maxFrameDepth: number, callTimeoutMs: number }

function isThenable (v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function'
}

const an = (word: string): string => /^[aeiou]/.test(word) ? 'an' : 'a'

/** Longest text from a peer (an error message) copied into our log lines. */
const LOGGED_CHARS = 500

export class RpcConnection extends EventEmitter implements Connection {
  readonly closed: Promise<void>
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly sinks = new Map<number, StreamSink>()
  private readonly serving = new Map<number, LazyAbort>()
  private readonly scan: ScanLimits
  private readonly deadlines = new DeadlineTimer(this)

  readonly peer: Peer

  constructor (
    private readonly channel: FrameChannel,
    private readonly router: Router,
    private readonly opts: RpcOptions,
    private readonly log: Logger
  ) {
    super()
    this.scan = { maxElements: opts.maxFrameElements, maxDepth: opts.maxFrameDepth }
    this.peer = channel.peer
    let closed: () => void = () => {}
    this.closed = new Promise((resolve) => { closed = resolve })
    channel.listen({
      frame: (bytes, binary) => this.onMessage(bytes, binary),
      error: (err) => this.log.warn(`connection with ${this.describePeer()}: ${err.message}`),
      close: (code, reason) => { this.onClose(code, reason); closed() }
    })
  }

  get isOpen (): boolean { return this.channel.isOpen }

  call<R = unknown>(method: string, payload?: unknown, opts: CallOptions = {}): Promise<R> {
    if (!this.isOpen) return Promise.reject(new OriginError('E_CLOSED', `connection to ${this.describePeer()} is closed`))
    const id = this.takeId()
    const timeoutMs = opts.timeoutMs ?? this.opts.callTimeoutMs
    // As setTimeout took them: no wait (or not a number) is the shortest, 1 ms.
    const deadline = monotonicMs() + (timeoutMs >= 1 ? Math.min(timeoutMs, Number.MAX_SAFE_INTEGER) : 1)
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, method, deadline, timeoutMs })
      try {
        countTraffic(method, 'sent', this.send({ t: 'req', id, m: method, p: payload }))
      } catch (err) {
        this.forget(id)
        reject(err)
        return
      }
      this.deadlines.added(deadline)
    })
  }

  /** Times out the calls due by `now` (the deadline timer calls it); the earliest deadline left. */
  expire (now: number): number {
    let next = Infinity
    const due: Pending[] = []
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) { this.pending.delete(id); due.push(p) } else if (p.deadline < next) next = p.deadline
    }
    // A late wake (a busy process) finds several due at once: they fail in deadline order.
    due.sort((a, b) => a.deadline - b.deadline)
    for (const p of due) {
      p.reject(new OriginError('E_TIMEOUT', `${p.method} got no answer from ${this.describePeer()} within ${p.timeoutMs} ms`, { method: p.method, timeoutMs: p.timeoutMs }))
    }
    return next
  }

  private forget (id: number): void {
    this.pending.delete(id)
    if (this.pending.size === 0) this.deadlines.idle()
  }

  stream<R = unknown>(method: string, payload?: unknown): AsyncIterable<R> {
    return { [Symbol.asyncIterator]: () => this.openStream<R>(method, payload) }
  }

  close (reason = 'closed'): void {
    this.channel.close(1000, reason.slice(0, 120))
  }

  /** Close at once, without a closing handshake (a revoked peer, a broken one). */
  terminate (): void { this.channel.terminate() }

  private openStream<R>(method: string, payload: unknown): AsyncIterator<R> {
    const id = this.takeId()
    const queue: Array<IteratorResult<R>> = []
    let failure: Error | undefined
    let wake: (() => void) | undefined
    let done = false
    const notify = (): void => { const w = wake; wake = undefined; w?.() }
    this.sinks.set(id, {
      push: (v) => { queue.push({ value: v as R, done: false }); notify() },
      end: () => { done = true; notify() },
      fail: (e) => { failure = e; notify() }
    })
    if (!this.isOpen) failure = new OriginError('E_CLOSED', `connection to ${this.describePeer()} is closed`)
    else {
      try { this.send({ t: 'req', id, m: method, p: payload }) } catch (err) { failure = err as Error }
    }
    const finish = (): void => { this.sinks.delete(id) }
    return {
      next: async () => {
        for (;;) {
          const item = queue.shift()
          if (item !== undefined) return item
          if (failure !== undefined) { finish(); throw failure }
          if (done) { finish(); return { value: undefined, done: true } }
          await new Promise<void>((resolve) => { wake = resolve })
        }
      },
      return: async () => {
        if (!done && failure === undefined && this.isOpen) this.send({ t: 'cancel', id })
        finish()
        return { value: undefined, done: true }
      }
    }
  }

  private takeId (): number {
    const id = this.nextId
    this.nextId = this.nextId >= 2 ** 32 ? 1 : this.nextId + 1
    return id
  }

  /** Sends a frame; returns the bytes sent (0 when nothing was). */
  private send (frame: Frame): number {
    if (!this.isOpen) return 0
    // An error frame is cut to a few kB (config.ts, errorFrameBounds), so it always fits.
    const bytes = encodeFrame(frame.t === 'err' ? { ...frame, e: boundedError(frame.e) } : frame)
    const problem = this.unsendable(bytes, frame.t)
    if (problem === undefined) { this.channel.batch(); this.channel.send(bytes); return bytes.length }
    // The peer would close the connection on it: answer that one call with the reason instead.
    this.log.warn(`not sending ${problem.message} to ${this.describePeer()}`)
    if (frame.t === 'req') throw problem
    if (frame.t === 'err') { this.channel.send(encodeFrame({ t: 'err', id: frame.id, e: { code: frame.e.code, message: clip(frame.e.message, 200) } })); return 0 }
    return this.send({ t: 'err', id: frame.id, e: problem.toJSON() })
  }

  /** Why the peer would refuse these bytes, if it would: the limits are the same on both ends. */
  private unsendable (bytes: Buffer, t: Frame['t']): OriginError | undefined {
    if (bytes.length > this.opts.maxFrameBytes) {
      return new OriginError('E_FRAME_TOO_LARGE', `${an(t)} ${t} frame of ${bytes.length} bytes is over the ${this.opts.maxFrameBytes} byte limit`, { size: bytes.length })
    }
    // A frame with fewer bytes than either limit cannot cross it (every value takes a byte).
    if (bytes.length <= Math.min(this.scan.maxElements, this.scan.maxDepth)) return undefined
    try {
      scanMsgpack(bytes, this.scan)
      return undefined
    } catch (err) {
      const e = asOriginError(err)
      return new OriginError(e.code, `${an(t)} ${t} ${e.message}`, e.data)
    }
  }

  private onMessage (data: Buffer, isBinary: boolean): void {
    let frame: Frame
    try {
      if (!isBinary) throw new OriginError('E_FRAME_INVALID', 'text message where a binary msgpack frame was expected')
      frame = decodeFrame(data, this.opts.maxFrameBytes, this.scan)
    } catch (err) {
      const e = asOriginError(err)
      this.log.warn(`refused a frame from ${this.describePeer()}: ${e.message}; closing the connection`)
      this.send({ t: 'err', id: 0, e: e.toJSON() })
      this.channel.close(1002, e.code)
      return
    }
    switch (frame.t) {
      case 'req': countTraffic(frame.m, 'received', data.length); this.serve(frame.id, frame.m, frame.p); break
      case 'res': {
        const p = this.pending.get(frame.id)
        if (p === undefined) break // timed out already
        countTraffic(p.method, 'received', data.length)
        this.forget(frame.id)
        p.resolve(frame.v)
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
    else this.settle(id, undefined, err)
  }

  private settle (id: number, value: unknown, err: Error | undefined): void {
    const p = this.pending.get(id)
    if (p === undefined) return // timed out already
    this.forget(id)
    if (err !== undefined) p.reject(err)
    else p.resolve(value)
  }

  /**
   * Answers a request. A unary handler that returns a plain value is answered in the same
   * turn, and one that returns a promise when it settles: no async frame, no abort
   * controller and no entry in `serving` per call unless the handler reads `ctx.signal`.
   */
  private serve (id: number, name: string, payload: unknown): void {
    let method: Method
    let p: unknown
    try {
      const entry = this.router.get(name)
      if (entry === undefined) throw new OriginError('E_UNKNOWN_METHOD', `no method "${name}"`, { method: name })
      method = entry.method
      if (method.role !== this.peer.role) {
        this.log.warn(`refused ${name} from ${this.describePeer()}: needs role ${method.role}, certificate has role ${this.peer.role}`)
        throw new OriginError('E_FORBIDDEN_ROLE', `${name} needs ${method.role === 'operator' ? 'an' : 'a'} ${method.role} certificate; yours has role ${this.peer.role}`, { method: name, need: method.role, have: this.peer.role })
      }
      p = entry.check(payload)
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
    if (isThenable(result)) result.then((v) => this.answer(id, name, v, call), (err) => { call.done(); this.fail(id, name, err) })
    else this.answer(id, name, result, call)
  }

  private answer (id: number, name: string, v: unknown, call: UnaryCall): void {
    call.done()
    let sent: number
    try {
      sent = this.send({ t: 'res', id, v })
    } catch (err) {
      this.fail(id, name, err) // an answer that cannot be encoded
      return
    }
    countTraffic(name, 'sent', sent)
  }

  /** Tells the caller why call `id` failed (errors from the handler or the checks before it). */
  private fail (id: number, name: string, err: unknown): void {
    const e = asOriginError(err, name)
    if (e.code === 'E_INTERNAL') this.log.error(`${name} failed for ${this.describePeer()}: ${clip(e.message, LOGGED_CHARS)}`)
    try {
      this.send({ t: 'err', id, e: e.toJSON() })
    } catch (sendErr) {
      this.log.error(`could not tell ${this.describePeer()} that ${name} failed: ${clip(asOriginError(sendErr).message, LOGGED_CHARS)}`)
    }
  }

  private async serveStream (id: number, name: string, method: StreamMethod<unknown, unknown>, p: unknown): Promise<void> {
    const controller = new LazyAbort()
    this.serving.set(id, controller)
    try {
      const peer = this.peer
      const ctx = { peer, get signal () { return controller.signal } }
      for await (const v of method.handler(p, ctx)) {
        if (controller.aborted || !this.isOpen) break
        this.send({ t: 'item', id, v })
        if (this.channel.bufferedAmount > BACKPRESSURE_BYTES) await this.drained()
      }
      this.send({ t: 'end', id })
    } catch (err) {
      this.fail(id, name, err)
    } finally {
      this.serving.delete(id)
    }
  }

  private async drained (): Promise<void> {
    while (this.isOpen && this.channel.bufferedAmount > BACKPRESSURE_BYTES / 2) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  private onClose (code: number, reason: string): void {
    const err = new OriginError('E_CLOSED', `connection to ${this.describePeer()} closed (${code}${reason ? ' ' + reason : ''})`)
    this.deadlines.stop()
    for (const [id, p] of this.pending) { p.reject(err); this.pending.delete(id) }
    for (const sink of this.sinks.values()) sink.fail(err)
    for (const c of this.serving.values()) c.abort()
    this.emit('close', code, reason)
  }

  describePeer (): string {
    return `${this.peer.role} ${this.peer.name} at ${this.peer.remote}`
  }
}
