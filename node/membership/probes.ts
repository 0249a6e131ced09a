/**
 * Members to ask directly, bounded: ones this node has only heard of (to confirm before
 * believing them), and known ones whose entry a third party wanted to change in a way
 * only the member itself may (to hear its own word). Time is an argument.
 *
 * - At most `max` entries. When full, a new one takes the place of one resting after a
 *   success; failing that it is dropped, except a member that called in itself
 *   (`urgent`): it takes the place of one that already failed to answer.
 * - An entry is due at once; after a failed probe it waits `retryMs`, doubling up to
 *   `maxRetryMs`; after a successful one it rests `retryMs` (a hostile peer repeating
 *   the same claim costs one probe per rest, not one per frame).
 * - An entry nobody mentions any more for `forgetAfterMs` is dropped, so a burst of
 *   ghosts is gone after a while, whatever happens.
 */

export interface ProbeTarget { id: string, address: string }

export interface ProbesOptions {
  max: number
  retryMs: number
  maxRetryMs: number
  forgetAfterMs: number
}

interface Entry { address: string, heardAt: number, nextAt: number, tries: number, inFlight: boolean, settled: boolean }

export class Probes {
  private readonly entries = new Map<string, Entry>()

  constructor (private readonly o: ProbesOptions) {}

  get size (): number { return this.entries.size }

  /** Entries still to confirm (not resting after a success). */
  get pending (): number {
    let n = 0
    for (const e of this.entries.values()) if (!e.settled) n++
    return n
  }

  /** `target` was mentioned at `now`. False when there was no room for it. */
  heard (target: ProbeTarget, now: number, urgent = false): boolean {
    const e = this.entries.get(target.id)
    if (e !== undefined) {
      e.heardAt = now
      if (!e.inFlight) e.address = target.address
      if (e.settled && now >= e.nextAt) { e.settled = false; e.tries = 0 }
      if (urgent && !e.inFlight && !e.settled) e.nextAt = now
      return true
    }
    if (this.entries.size >= this.o.max && !this.evictSettled() && !(urgent && this.evictFailed())) return false
    this.entries.set(target.id, { address: target.address, heardAt: now, nextAt: now, tries: 0, inFlight: false, settled: false })
    return true
  }

  /** Up to `limit` entries whose probe is due, marked in flight. */
  due (now: number, limit: number): ProbeTarget[] {
    const out: ProbeTarget[] = []
    for (const [id, e] of this.entries) {
      if (out.length >= limit) break
      if (e.inFlight || e.settled || e.nextAt > now) continue
      e.inFlight = true
      out.push({ id, address: e.address })
    }
    return out
  }

  /** The probe of `id` was not made after all (its address was busy): due again. */
  release (id: string): void {
    const e = this.entries.get(id)
    if (e !== undefined) e.inFlight = false
  }

  succeeded (id: string, now: number): void {
    const e = this.entries.get(id)
    if (e === undefined) return
    Object.assign(e, { inFlight: false, settled: true, tries: 0, nextAt: now + this.o.retryMs })
  }

  failed (id: string, now: number): void {
    const e = this.entries.get(id)
    if (e === undefined) return
    e.inFlight = false
    e.nextAt = now + Math.min(this.o.maxRetryMs, this.o.retryMs * 2 ** e.tries)
    e.tries++
  }

  /** Forget what rested long enough or nobody mentioned for `forgetAfterMs`. */
  prune (now: number): void {
    for (const [id, e] of this.entries) {
      if (e.inFlight) continue
      if ((e.settled && now >= e.nextAt) || now - e.heardAt > this.o.forgetAfterMs) this.entries.delete(id)
    }
  }

  /**
   * Drop the entry resting longest after a success; false when there is none. Its rest
   * only spaces out re-checks of one claim, and contacts per round are bounded anyway:
   * room for a member still to meet matters more (a node joining a large cluster).
   */
  private evictSettled (): boolean {
    let oldest: [string, Entry] | undefined
    for (const entry of this.entries) {
      if (entry[1].settled && (oldest === undefined || entry[1].nextAt < oldest[1].nextAt)) oldest = entry
    }
    if (oldest !== undefined) this.entries.delete(oldest[0])
    return oldest !== undefined
  }

  /** Drop one entry that failed to answer (the one tried most); false when there is none. */
  private evictFailed (): boolean {
    let worst: [string, Entry] | undefined
    for (const entry of this.entries) {
      if (!entry[1].inFlight && entry[1].tries > 0 && (worst === undefined || entry[1].tries > worst[1].tries)) worst = entry
    }
    if (worst !== undefined) this.entries.delete(worst[0])
    return worst !== undefined
  }
}
