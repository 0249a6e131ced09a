/**
 * Lifeguard's dynamic suspicion timeout: a suspect gets `maxMs` to refute when one node
 * suspects it, shrinking on a log scale toward `minMs` as independent confirmations
 * (other members whose probes failed too) arrive:
 *
 *   timeout(c) = max(minMs, maxMs − (maxMs − minMs) · log(c + 1) / log(k + 1))
 *
 * with k the confirmations expected. A member only one node cannot reach (a one-way
 * link) keeps the long timeout; one everybody has lost goes quickly. Measured from when
 * this node first heard the suspicion. Time is an argument: no clock here.
 */

export interface SuspicionLimits { minMs: number, maxMs: number }

/** The timeout after `confirmations` independent confirmations when `expected` bring it to the minimum. */
export function suspicionTimeoutMs (limits: SuspicionLimits, expected: number, confirmations: number): number {
  const { minMs, maxMs } = limits
  if (expected < 1 || maxMs <= minMs) return minMs
  const frac = Math.log(Math.min(confirmations, expected) + 1) / Math.log(expected + 1)
  return Math.max(minMs, Math.round(maxMs - (maxMs - minMs) * frac))
}

/** Confirmations to expect in a cluster of `members`: `wanted`, or none when too few others could confirm. */
export function expectedConfirmations (wanted: number, members: number): number {
  return members - 2 < wanted ? 0 : wanted
}

interface Suspicion { incarnation: number, startedAt: number, by: Set<string>, expected: number, floorMs: number }

/** The suspicions this node holds, by member id. */
export class Suspicions {
  private readonly held = new Map<string, Suspicion>()

  constructor (private readonly limits: SuspicionLimits) {}

  has (id: string): boolean { return this.held.has(id) }

  /**
   * `by` suspects `id` at `incarnation`. Starts a suspicion (or a new one, for a newer
   * incarnation); for one already held, counts `by` as a confirmation if it is new.
   * True when this is news: a new suspicion or a new confirmation. `floorMs` raises both
   * bounds for this suspicion (fence.ts: in a larger cluster, a cut-off node needs longer
   * to notice it is cut off than the configured minimum).
   */
  suspect (id: string, incarnation: number, by: string, now: number, expected: number, floorMs = 0): boolean {
    const s = this.held.get(id)
    if (s === undefined || incarnation > s.incarnation) {
      this.held.set(id, { incarnation, startedAt: now, by: new Set([by]), expected, floorMs })
      return true
    }
    if (incarnation < s.incarnation || s.by.has(by)) return false
    s.by.add(by)
    return true
  }

  /** The member is no longer suspect here (refuted, dead or gone). */
  clear (id: string): void { this.held.delete(id) }

  /** When the suspicion of `id` runs out, as things stand. */
  deadline (id: string): number | undefined {
    const s = this.held.get(id)
    if (s === undefined) return undefined
    const limits = s.floorMs <= this.limits.minMs ? this.limits : { minMs: s.floorMs, maxMs: Math.max(this.limits.maxMs, s.floorMs) }
    return s.startedAt + suspicionTimeoutMs(limits, s.expected, s.by.size - 1)
  }

  /** Suspicions that ran out at `now`, with the incarnation each was about. */
  due (now: number): Array<{ id: string, incarnation: number, confirmations: number, heldMs: number }> {
    const out = []
    for (const [id, s] of this.held) {
      if (now >= (this.deadline(id) as number)) out.push({ id, incarnation: s.incarnation, confirmations: s.by.size - 1, heldMs: now - s.startedAt })
    }
    return out
  }

  /**
   * This node could not watch for `ms` (paused, stalled): nobody's suspicion ran on
   * meanwhile. Infinity (the clock went backwards): every suspicion starts again at `now`.
   */
  extend (ms: number, now: number): void {
    for (const s of this.held.values()) s.startedAt = ms === Infinity ? now : Math.min(now, s.startedAt + ms)
  }
}
