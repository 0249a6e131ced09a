/**
 * What a handler is given on the serving side of a call: its context, with an abort signal
 * made only when the handler asks for it. Creating an AbortController per call was the
 * largest cost of a small RPC.
 */
import type { CallContext, Peer } from './types'

/** An AbortController made only when someone asks for the signal. */
export class LazyAbort {
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
export class UnaryCall implements CallContext {
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

/** A stream handler's context: the peer, and a signal aborted on cancel or close. */
export class StreamCall implements CallContext {
  readonly abort = new LazyAbort()
  constructor (readonly peer: Peer) {}
  get signal (): AbortSignal { return this.abort.signal }
}

export function isThenable (v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function'
}
