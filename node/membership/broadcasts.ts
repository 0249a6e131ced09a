/**
 * The queue of member-table changes waiting to be piggybacked on outgoing messages
 * (SWIM's dissemination): each change is sent a bounded number of times,
 * `retransmitMult × ceil(log10(members + 1))` (memberlist's rule: enough for an epidemic
 * to reach every member with high probability, not one send per member), then dropped.
 * Pure bookkeeping: no clock, no I/O, no randomness.
 *
 * - A newer change for a member replaces the one queued (only the latest entry matters:
 *   the merge keeps the greater one anyway), with its count reset.
 * - `take` hands out the changes sent least so far first (the newest among equals), so a
 *   fresh change is not starved by old ones when a message has room for a few.
 * - The queue holds at most `max` changes; past it the most-sent one goes first.
 */
import type { Member } from './types'

/** One change as it travels: the member's entry, and who suspected it (for a suspicion). */
export interface Delta { e: Member, by?: string }

interface Queued { delta: Delta, sent: number, seq: number }

/** How many times each change is sent in a cluster of `members`. */
export function retransmitLimit (mult: number, members: number): number {
  return Math.max(1, mult * Math.ceil(Math.log10(Math.max(1, members) + 1)))
}

export class DeltaQueue {
  private readonly queued = new Map<string, Queued>()
  private seq = 0

  constructor (private readonly max = 1024) {}

  get size (): number { return this.queued.size }

  /** Queue `e` (replacing what was queued for its id). */
  add (e: Member, by?: string): void {
    this.queued.delete(e.id)
    if (this.queued.size >= this.max) this.dropMostSent()
    this.queued.set(e.id, { delta: by === undefined ? { e } : { e, by }, sent: 0, seq: this.seq++ })
  }

  /** What is queued for `id`, if anything. */
  get (id: string): Delta | undefined {
    return this.queued.get(id)?.delta
  }

  /**
   * Up to `limit` changes for one message, least sent first; each counts as sent once,
   * and one sent `retransmitLimit` times leaves the queue.
   */
  take (limit: number, limitPerChange: number): Delta[] {
    if (limit <= 0 || this.queued.size === 0) return []
    const picked = [...this.queued.entries()]
      .sort(([, a], [, b]) => a.sent - b.sent || b.seq - a.seq)
      .slice(0, limit)
    for (const [id, q] of picked) {
      q.sent++
      if (q.sent >= limitPerChange) this.queued.delete(id)
    }
    return picked.map(([, q]) => q.delta)
  }

  private dropMostSent (): void {
    let worst: [string, Queued] | undefined
    for (const entry of this.queued) {
      if (worst === undefined || entry[1].sent > worst[1].sent || (entry[1].sent === worst[1].sent && entry[1].seq < worst[1].seq)) worst = entry
    }
    if (worst !== undefined) this.queued.delete(worst[0])
  }
}
