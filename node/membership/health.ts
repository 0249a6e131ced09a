/**
 * This node's own health, after Lifeguard: a node that is itself slow (overloaded,
 * starved of CPU, its event loop stalled) must not take its own slowness for its peers'.
 *
 * - The local health multiplier (LHM), 0..max: raised by a probe that got no ack at all,
 *   by each relay that sent neither ack nor nack in time (a nack proves the relay ran; its
 *   absence suggests this node is the slow one), and by having to refute a suspicion of
 *   itself; lowered by each timely direct ack. Probe timeouts are scaled by (1 + LHM).
 * - Blind time: periods are expected every `periodMs`. A gap past two periods (SIGSTOP,
 *   a stalled loop, a clock jump) is time this node could not listen: suspicions do not
 *   run through it, and health drops to its worst, to recover ack by ack.
 * Time is an argument: no clock here.
 */

export class LocalHealth {
  private score = 0
  private lastTick?: number

  constructor (private readonly o: { max: number, periodMs: number }) {}

  get value (): number { return this.score }

  raise (by = 1): void { this.score = Math.min(this.o.max, this.score + by) }

  lower (): void { this.score = Math.max(0, this.score - 1) }

  /** `ms` stretched by this node's health. */
  scale (ms: number): number { return ms * (1 + this.score) }

  /**
   * A protocol period starts at `now`: the time this node was blind since the last one
   * (0 normally; Infinity when the clock went backwards).
   */
  tick (now: number): number {
    const last = this.lastTick
    this.lastTick = now
    if (last === undefined) return 0
    const gap = now - last
    if (gap >= 0 && gap <= 2 * this.o.periodMs) return 0
    this.score = this.o.max
    return gap < 0 ? Infinity : gap - this.o.periodMs
  }
}
