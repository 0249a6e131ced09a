/**
 * What a node believes of a table another node sent it: pure, no clock (time is an
 * argument), no I/O. The merge (`table.ts`) says which of two entries is newer; this says
 * which entries may take part in it at all. Anyone holding a node certificate can send
 * anything the schema allows, so entries are checked for sense:
 *
 * - A member this node does not know is not believed from hearsay: it is only *heard
 *   of* (returned in `unknown`, for the caller to contact). It enters the table when it
 *   speaks for itself (`speaker`: the caller dialed its address and it answered, or it
 *   called in from the host this node knows it at) and says it is alive, while the table
 *   has room. So a ghost never counts in a quorum, never hosts, never ranks as a hub.
 * - About a known member, a third party may say less than the member itself:
 *   - its incarnation may be raised by at most `incarnationSlack` above the highest the
 *     member ever gave this node itself (a refutation relayed is +1; a jump to 1e15 is
 *     not), so a live member can always refute, and incarnations stay safe integers;
 *   - a higher incarnation only as `alive` (a third party changes a status only at the
 *     incarnation the entry has here);
 *   - `left` only when this node already holds the member dead or left (an operator's
 *     `forget`, or a replaced identity): only the member says it leaves;
 *   - `dead` not while the member answered this node lately (`fresh`): this node's own
 *     evidence beats another's stale view. Its own probes will judge.
 *   Refused entries that the member itself could settle are marked `recheck`: the caller
 *   asks the member directly.
 * - About this node, anything up to `incarnationSlack` above its own incarnation (or a
 *   plausible timestamp, for an earlier run of its id) is taken, and refuted.
 * - What a member says of itself (`speaker`) is taken, up to a ceiling for everyone:
 *   an incarnation starts as the member's clock and grows by refutations, so one more
 *   than `2 * maxClockAheadMs` ahead of this node's clock is nothing a member reached.
 */
import { compareEntries, compareIds, mergeMember, mergeTables, refute } from './table'
import type { Member, MemberTable } from './types'

export interface HearLimits {
  /** Most entries the table holds: beyond it no new member is confirmed. */
  maxMembers: number
  /** How far above what a member last said itself a third party may raise its incarnation. */
  incarnationSlack: number
  /** How far ahead of this node's clock an incarnation about this node may be; twice it, about anyone. */
  maxClockAheadMs: number
}

/** What a node knows: itself, its table (itself included), and what each member said itself. */
export interface Knowledge {
  self: Member
  table: MemberTable
  /** Member id -> the highest incarnation that member gave this node itself. */
  direct: ReadonlyMap<string, number>
}

export interface Hearing {
  /** The member whose own word this table carries, as the caller verified it; none for hearsay. */
  speaker?: string
  /** More members speaking for themselves in one hearing (acks of several direct contacts heard at once). */
  speakers?: ReadonlySet<string>
  /** Members that answered this node lately: a third party's `dead` about them is refused. */
  fresh: { has: (id: string) => boolean }
  now: number
}

export interface Refusal {
  id: string
  address: string
  reason: string
  /** The member itself could settle it: ask it directly. */
  recheck: boolean
}

export interface Heard {
  knowledge: Knowledge
  /** Members the table does not hold, said to be alive or suspect: to confirm by contact. */
  unknown: Array<{ id: string, address: string }>
  refused: Refusal[]
}

type Judgement = 'take' | 'ignore' | 'unknown' | { reason: string, recheck: boolean }

/** Believe what can be believed of `incoming` (a checked frame's table), merge it, and refute what is said of this node. */
export function hear (k: Knowledge, incoming: MemberTable, h: Hearing, limits: HearLimits): Heard {
  const taken: MemberTable = {}
  const unknown: Heard['unknown'] = []
  const refused: Refusal[] = []
  // Counted only when a new member is taken: most frames bring none.
  let room: number | undefined
  for (const id of Object.keys(incoming).sort(compareIds)) {
    const e = incoming[id]
    const j = e.id !== id ? { reason: `keyed "${id}" but is member "${e.id}"`, recheck: false } : judge(k, e, h, limits)
    if (j === 'ignore') continue
    if (j === 'unknown') { unknown.push({ id, address: e.address }); continue }
    if (j !== 'take') { refused.push({ id, address: e.address, ...j }); continue }
    if (!Object.hasOwn(k.table, id)) {
      room ??= limits.maxMembers - Object.keys(k.table).length
      if (room <= 0) { refused.push({ id, address: e.address, reason: `the table is full (${limits.maxMembers} members)`, recheck: false }); continue }
      room--
    }
    taken[id] = e
  }
  let table = mergeInto(k.table, taken)
  const self = refute(k.self, table[k.self.id])
  if (table[self.id] !== self) table = { ...table, [self.id]: self }
  let direct: Map<string, number> | undefined
  for (const speaker of speakersOf(h)) {
    const said = Object.hasOwn(incoming, speaker) ? incoming[speaker] : undefined
    if (said !== undefined && said.id === speaker && Object.hasOwn(table, said.id) && said.incarnation > ((direct ?? k.direct).get(said.id) ?? -1)) {
      direct ??= new Map(k.direct)
      direct.set(said.id, said.incarnation)
    }
  }
  return { knowledge: { self, table, direct: direct ?? k.direct }, unknown, refused }
}

/**
 * `mergeTables(table, taken)`, cheaper for what SWIM mostly brings (a few changes to known
 * members, or nothing): `table` itself when nothing was taken, a copy with the greater
 * entries when every id is known, the sorted merge only when members are new.
 */
function mergeInto (table: MemberTable, taken: MemberTable): MemberTable {
  const ids = Object.keys(taken)
  if (ids.length === 0) return table
  if (!ids.every((id) => Object.hasOwn(table, id) && id !== '__proto__')) return mergeTables(table, taken)
  const out = { ...table }
  for (const id of ids) out[id] = mergeMember(table[id], taken[id])
  return out
}

function speaks (h: Hearing, id: string): boolean {
  return h.speaker === id || (h.speakers?.has(id) ?? false)
}

function speakersOf (h: Hearing): string[] {
  const all = h.speakers === undefined ? [] : [...h.speakers]
  return h.speaker === undefined || all.includes(h.speaker) ? all : [...all, h.speaker]
}

function judge (k: Knowledge, e: Member, h: Hearing, limits: HearLimits): Judgement {
  if (e.id === k.self.id) {
    const bound = Math.max(k.self.incarnation + limits.incarnationSlack, h.now + limits.maxClockAheadMs)
    return e.incarnation > bound ? { reason: `incarnation ${e.incarnation} about this node is above ${bound}`, recheck: false } : 'take'
  }
  if (e.incarnation > h.now + 2 * limits.maxClockAheadMs) {
    return { reason: `incarnation ${e.incarnation} is more than ${2 * limits.maxClockAheadMs} ms ahead of this node's clock: no member starts or refutes that far`, recheck: false }
  }
  const ours = Object.hasOwn(k.table, e.id) ? k.table[e.id] : undefined
  if (ours === undefined) {
    if (speaks(h, e.id)) return e.status === 'alive' ? 'take' : 'ignore'
    return e.status === 'alive' || e.status === 'suspect' ? 'unknown' : 'ignore'
  }
  if (compareEntries(e, ours) <= 0) return 'ignore' // would change nothing
  if (speaks(h, e.id)) return 'take'
  const own = k.direct.get(e.id) ?? ours.incarnation
  if (e.incarnation > own + limits.incarnationSlack) {
    return { reason: `incarnation ${e.incarnation} is more than ${limits.incarnationSlack} above ${own}, the highest ${e.id} gave this node itself`, recheck: true }
  }
  if (e.incarnation > ours.incarnation && e.status !== 'alive') {
    return { reason: `${e.status} at incarnation ${e.incarnation}: a third party changes a status only at the incarnation the entry has here (${ours.incarnation})`, recheck: true }
  }
  if (e.status === 'left' && ours.status !== 'dead' && ours.status !== 'left') {
    return { reason: `left, said by a third party while it is ${ours.status} here: only a member says it leaves`, recheck: true }
  }
  if (e.status === 'dead' && ours.status !== 'dead' && h.fresh.has(e.id)) {
    return { reason: 'dead, said by a third party while it answered this node lately', recheck: false }
  }
  return 'take'
}
