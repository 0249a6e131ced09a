/**
 * The caller's side of unary calls: each call waiting for its answer, with its deadline.
 * Deadlines share one timer per connection (deadlines.ts) on the connection's clock.
 */
import type { Clock } from '../clock'
import { OriginError } from '../errors'
import { DeadlineTimer, type DeadlineOwner } from './deadlines'

export interface Pending { resolve (v: unknown): void, reject (e: Error): void, method: string, deadline: number, timeoutMs: number }

export class PendingCalls implements DeadlineOwner {
  private readonly pending = new Map<number, Pending>()
  private readonly deadlines: DeadlineTimer

  constructor (clock: Clock, private readonly describePeer: () => string) {
    this.deadlines = new DeadlineTimer(this, clock)
  }

  /** Call `id` (already sent) waits for its answer until `timeoutMs` from now. */
  add<R>(id: number, method: string, timeoutMs: number): Promise<R> {
    // As setTimeout took them: no wait (or not a number) is the shortest, 1 ms.
    const deadline = this.deadlines.now() + (timeoutMs >= 1 ? Math.min(timeoutMs, Number.MAX_SAFE_INTEGER) : 1)
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, method, deadline, timeoutMs })
      this.deadlines.added(deadline)
    })
  }

  /** Call `id` was answered: its entry, no longer waiting (undefined: timed out already, or never made). */
  take (id: number): Pending | undefined {
    const p = this.pending.get(id)
    if (p === undefined) return undefined
    this.pending.delete(id)
    if (this.pending.size === 0) this.deadlines.idle()
    return p
  }

  /** Call `id` failed on the other end: reject it, if it still waits. */
  fail (id: number, err: Error): void { this.take(id)?.reject(err) }

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

  /** The connection closed: every waiting call fails with `err`, and the timer stops. */
  failAll (err: Error): void {
    this.deadlines.stop()
    for (const [id, p] of this.pending) { p.reject(err); this.pending.delete(id) }
  }
}
