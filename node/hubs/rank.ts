/**
 * Hub ranking and selection: pure functions of the member table and the hub policy.
 *
 * Every node computes `selectHubs` from its own view of the table; nodes with the same
 * view agree on the hubs with no election. Hysteresis keeps the hub set steady: each
 * member's `hub` flag (its own last computation, gossiped in the table) marks it an
 * incumbent, and a non-hub takes an incumbent's seat only when it `clearlyBeats` it.
 */
import type { Member, MemberTable } from '../membership/types'
import { compareEntries } from '../membership/table'
import { compareIds, type RankKey } from '../vocabulary'
import type { HubPolicy } from './types'

type Compare = (a: Member, b: Member) => number

const byKey: Record<RankKey, Compare> = {
  memory: (a, b) => compareNumbers(b.characteristics.memoryMb, a.characteristics.memoryMb),
  cpus: (a, b) => compareNumbers(b.characteristics.cpus, a.characteristics.cpus),
  uptime: (a, b) => compareNumbers(a.characteristics.startedAt, b.characteristics.startedAt),
  id: (a, b) => compareIds(a.id, b.id)
}

/**
 * Strongest first, by `policy.ranking` in order (memory desc, cpus desc, uptime = earlier
 * `startedAt` first, id asc). `id` is appended when absent, so members with distinct ids
 * are totally ordered (two entries for one id fall back to `compareEntries`, newer first).
 */
export function rankMembers (members: Member[], policy: HubPolicy): Member[] {
  return [...members].sort(rankComparator(policy))
}

/**
 * Whether `challenger` (not a hub) should take the seat of `incumbent` (a hub). Walk
 * `policy.ranking`: memory decides only beyond `policy.memoryMargin` (relative) either
 * way and continues within it; cpus decide when they differ; uptime and id never decide
 * for a challenger (the incumbent keeps its seat).
 *
 * The challenger must also rank above the incumbent. Without that, memory within the
 * margin but lower, then more cpus, would let a member take the seat of one that ranks
 * above it; the hub set would then depend on the order seats were filled, and
 * `selectHubs` would not be a fixed point of its own flags (hubs would flap).
 */
export function clearlyBeats (challenger: Member, incumbent: Member, policy: HubPolicy): boolean {
  if (rankComparator(policy)(challenger, incumbent) >= 0) return false
  const c = challenger.characteristics
  const i = incumbent.characteristics
  for (const key of policy.ranking) {
    if (key === 'memory') {
      if (c.memoryMb > i.memoryMb * (1 + policy.memoryMargin)) return true
      if (i.memoryMb > c.memoryMb * (1 + policy.memoryMargin)) return false
    } else if (key === 'cpus') {
      if (c.cpus !== i.cpus) return c.cpus > i.cpus
    } else {
      return false
    }
  }
  return false
}

/**
 * The hub ids, strongest first. Eligible: alive or suspect (a suspect hub keeps its seat
 * until it is declared dead, so a hiccup does not move hubs). With no more eligible
 * members than `policy.count`, all of them. Otherwise seats go to the best-ranked
 * incumbents (`hub` flag set), then to the best-ranked others; then, while the
 * best-ranked member without a seat clearly beats the worst-ranked incumbent holding
 * one, they swap. Each swap seats a member that ranks above the one it unseats, so the
 * loop ends.
 */
export function selectHubs (table: MemberTable, policy: HubPolicy): string[] {
  const count = Math.max(0, Math.floor(policy.count))
  const ranked = rankMembers(
    Object.values(table).filter((m) => m.status === 'alive' || m.status === 'suspect'),
    policy
  )
  if (ranked.length <= count) return ranked.map((m) => m.id)

  const chosen = new Set(ranked.filter((m) => m.hub).slice(0, count))
  for (const m of ranked) {
    if (chosen.size >= count) break
    if (!m.hub) chosen.add(m)
  }
  for (;;) {
    const challenger = ranked.find((m) => !chosen.has(m))
    const weakest = lastWhere(ranked, (m) => m.hub && chosen.has(m))
    if (challenger === undefined || weakest === undefined) break
    if (!clearlyBeats(challenger, weakest, policy)) break
    chosen.delete(weakest)
    chosen.add(challenger)
  }
  return ranked.filter((m) => chosen.has(m)).map((m) => m.id)
}

/** Ids in `next` and not `prev` (promoted), and in `prev` and not `next` (demoted), each in its list's order. */
export function hubsChanged (prev: string[], next: string[]): { promoted: string[], demoted: string[] } {
  const before = new Set(prev)
  const after = new Set(next)
  return {
    promoted: next.filter((id) => !before.has(id)),
    demoted: prev.filter((id) => !after.has(id))
  }
}

function rankComparator (policy: HubPolicy): Compare {
  const keys: RankKey[] = policy.ranking.includes('id') ? policy.ranking : [...policy.ranking, 'id']
  return (a, b) => {
    for (const key of keys) {
      const c = byKey[key](a, b)
      if (c !== 0) return c
    }
    return compareEntries(b, a)
  }
}

/** `Array.prototype.findLast`, which the ES2022 lib does not declare. */
function lastWhere<T> (xs: T[], pred: (x: T) => boolean): T | undefined {
  for (let i = xs.length - 1; i >= 0; i--) if (pred(xs[i])) return xs[i]
  return undefined
}

function compareNumbers (a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0
}
