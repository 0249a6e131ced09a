/**
 * The member table as a join-semilattice: pure functions, no clock, no I/O.
 *
 * Two entries for the same id are ordered by `compareEntries` (incarnation, then status
 * rank, then heartbeat, then the remaining fields), and a merge keeps the greater one.
 * Because that order is total, `mergeTables` is commutative, associative and idempotent:
 * nodes that have seen the same entries hold the same table, whatever order gossip
 * brought them in.
 *
 * Tables are values: no function here mutates its arguments.
 */
import type { Member, MemberStatus, MemberTable } from './types'

/** alive < suspect < dead < left: at one incarnation, the later word wins. */
export const statusRank: Record<MemberStatus, number> = { alive: 0, suspect: 1, dead: 2, left: 3 }

/** Code-unit order of ids; never `localeCompare`, whose answer depends on the machine. */
export function compareIds (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * A total order over entries for the same id: incarnation, then status rank, then
 * heartbeat, then a structural comparison of all fields (sorted keys), so that two
 * entries compare equal only when they are equal as data. Entries are JSON data as
 * validated off the wire: finite numbers (a NaN would break the order).
 */
export function compareEntries (a: Member, b: Member): number {
  if (a === b) return 0
  return compareNumbers(a.incarnation, b.incarnation) ||
    compareNumbers(statusRank[a.status], statusRank[b.status]) ||
    compareNumbers(a.heartbeat, b.heartbeat) ||
    (sameData(a, b) ? 0 : compareData(a, b))
}

/** The greater of two entries for the same id (one of the inputs, unchanged). */
export function mergeMember (a: Member, b: Member): Member {
  return compareEntries(a, b) >= 0 ? a : b
}

/** Union of ids; for an id in both, the greater entry. Keys are inserted in sorted order. */
export function mergeTables (a: MemberTable, b: MemberTable): MemberTable {
  const out: MemberTable = {}
  for (const id of sortedUnion(Object.keys(a), Object.keys(b))) {
    const x = Object.hasOwn(a, id) ? a[id] : undefined
    const y = Object.hasOwn(b, id) ? b[id] : undefined
    setEntry(out, id, x !== undefined && y !== undefined ? mergeMember(x, y) : (x ?? y) as Member)
  }
  return out
}

/**
 * The ids of both lists, once each, sorted. Merged tables keep their keys sorted, so the
 * usual case (a sorted table and a few ids) is a linear merge rather than a sort.
 */
function sortedUnion (a: string[], b: string[]): string[] {
  const isSorted = (xs: string[]): boolean => xs.every((x, i) => i === 0 || compareIds(xs[i - 1], x) < 0)
  const xs = isSorted(a) ? a : [...new Set(a)].sort(compareIds)
  const inA = new Set(xs)
  const ys = [...new Set(b.filter((id) => !inA.has(id)))].sort(compareIds)
  const out: string[] = []
  let i = 0
  let j = 0
  while (i < xs.length || j < ys.length) {
    if (j >= ys.length || (i < xs.length && compareIds(xs[i], ys[j]) < 0)) out.push(xs[i++])
    else out.push(ys[j++])
  }
  return out
}

/**
 * Ids whose entry in `after` is new or differs (as data) from `before`, sorted.
 * An id missing from `after` is not reported: merges never remove entries.
 */
export function changedIds (before: MemberTable, after: MemberTable): string[] {
  return Object.keys(after)
    .filter((id) => !Object.hasOwn(before, id) || compareEntries(before[id], after[id]) !== 0)
    .sort(compareIds)
}

/**
 * Say `id` is suspect or dead (or, when an operator forgets a dead member, left) at its current incarnation. Only raises the status: an
 * entry already at that status or later (or a missing id) leaves the table as it was
 * (the same object is returned).
 */
export function markStatus (table: MemberTable, id: string, status: 'suspect' | 'dead' | 'left'): MemberTable {
  const current = Object.hasOwn(table, id) ? table[id] : undefined
  if (current === undefined || statusRank[current.status] >= statusRank[status]) return table
  const out = { ...table }
  setEntry(out, id, { ...current, status })
  return out
}

/**
 * What a member says about itself after seeing `seen`, the cluster's entry for its id,
 * so that its own word wins the merge:
 * - `seen` would not win over `self` (older, or equal): `self` unchanged.
 * - otherwise (a suspicion, a verdict, a `left` it never said, an entry from an earlier
 *   run, or fields someone else wrote at its incarnation): it speaks again at
 *   `seen.incarnation + 1`, which outranks every entry at `seen.incarnation`, with its
 *   own fields and heartbeat. Only the member raises its own incarnation, so a heartbeat
 *   or a status planted by someone else never outlasts its next word.
 * A member that has `left` keeps saying so: left outranks every status at an incarnation.
 * How far `seen.incarnation` may be above `self` is the receiver's business (`hear`
 * bounds it), so the answer stays a safe integer.
 */
export function refute (self: Member, seen: Member | undefined): Member {
  if (seen === undefined || seen.id !== self.id || compareEntries(seen, self) <= 0) return self
  return { ...self, incarnation: seen.incarnation + 1, status: self.status === 'left' ? 'left' : 'alive' }
}

/**
 * A node restarted with a wiped data dir comes back under a new id at its old address:
 * a dead member whose address an alive member (another id) now has is that old identity,
 * and becomes `left` (so it no longer counts against the singleton majority). Members
 * that are alive or suspect are left alone: two live entries at one address are not
 * something to settle by guessing. Returns `table` itself when nothing changes.
 */
export function retireReplaced (table: MemberTable): MemberTable {
  // Most tables have no dead member at all: nothing to look up then.
  let anyDead = false
  for (const id in table) if (table[id].status === 'dead') { anyDead = true; break }
  if (!anyDead) return table
  const aliveAt = new Map<string, string>()
  for (const m of Object.values(table)) if (m.status === 'alive') aliveAt.set(m.address, m.id)
  let out = table
  for (const m of Object.values(table)) {
    const successor = aliveAt.get(m.address)
    if (m.status === 'dead' && successor !== undefined && successor !== m.id) out = markStatus(out, m.id, 'left')
  }
  return out
}

/** The alive member that took over `m`'s address, if `m` was retired for that reason. */
export function replacementOf (table: MemberTable, m: Member): Member | undefined {
  return Object.values(table).find((x) => x.status === 'alive' && x.address === m.address && x.id !== m.id)
}

/** Members with status alive, sorted by id. */
export function aliveMembers (table: MemberTable): Member[] {
  return Object.values(table)
    .filter((m) => m.status === 'alive')
    .sort((a, b) => compareIds(a.id, b.id))
}

/** How many entries have each status (every status present, 0 when none). */
export function countByStatus (table: MemberTable): Record<MemberStatus, number> {
  const counts: Record<MemberStatus, number> = { alive: 0, suspect: 0, dead: 0, left: 0 }
  for (const m of Object.values(table)) counts[m.status]++
  return counts
}

function compareNumbers (a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Total order over JSON-like data: by kind (null < boolean < number < string < array <
 * object), then by value; objects by their sorted keys, then values key by key.
 * Cheaper than building canonical JSON strings, and the same answer for data.
 */
function compareData (a: unknown, b: unknown): number {
  const ka = kind(a)
  const kb = kind(b)
  if (ka !== kb) return ka - kb
  if (ka === KIND_ARRAY) {
    const x = a as unknown[]
    const y = b as unknown[]
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const c = compareData(x[i], y[i])
      if (c !== 0) return c
    }
    return x.length - y.length
  }
  if (ka === KIND_OBJECT) {
    const x = a as Record<string, unknown>
    const y = b as Record<string, unknown>
    const xs = Object.keys(x).sort(compareIds)
    const ys = Object.keys(y).sort(compareIds)
    for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
      const c = compareIds(xs[i], ys[i]) || compareData(x[xs[i]], y[ys[i]])
      if (c !== 0) return c
    }
    return xs.length - ys.length
  }
  if (a === b || ka === KIND_NULL) return 0
  return (a as number | string | boolean) < (b as number | string | boolean) ? -1 : 1
}

/** Fast path for the usual tie, an entry gossiped back unchanged: no key sorting. */
function sameData (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  const x = a as Record<string, unknown>
  const y = b as Record<string, unknown>
  return ka.every((k) => Object.hasOwn(y, k) && sameData(x[k], y[k]))
}

const KIND_NULL = 0
const KIND_ARRAY = 4
const KIND_OBJECT = 5

function kind (v: unknown): number {
  if (v === null || v === undefined) return KIND_NULL
  if (typeof v === 'boolean') return 1
  if (typeof v === 'number') return 2
  if (typeof v === 'string') return 3
  return Array.isArray(v) ? KIND_ARRAY : KIND_OBJECT
}

/** Own data property even for an id like `__proto__`, which `out[id] = m` would not set. */
function setEntry (table: MemberTable, id: string, m: Member): void {
  if (id !== '__proto__') table[id] = m
  else Object.defineProperty(table, id, { value: m, enumerable: true, writable: true, configurable: true })
}
