/**
 * Downing: removing dead members from the membership with no operator command, so a
 * cluster that loses machines by crashes shrinks (and its survivors regain a majority for
 * singletons), without both sides of a partition ever removing each other. After Akka's
 * split brain resolver; pure: no clock, no I/O (the time the membership has been stable
 * is an argument).
 *
 * The rules, in order (`decideDowning`):
 * 1. The membership is every entry that has not `left`; nothing to do while none is `dead`.
 * 2. Unstable: while any member is `suspect`, or the membership (ids and their
 *    alive/suspect/dead status) changed less than `afterMs` ago, wait. A partition makes
 *    every member across it go silent at once, so by the time one of them has been dead
 *    for `afterMs` with nothing suspect, all of them are dead in this node's view: it
 *    decides on the whole other side, never on part of it.
 * 3. This side is the members not dead. The strategy says whether this side may down the
 *    dead ones (they become `left`: they stop counting anywhere, and come back, if they
 *    ever do, as a new incarnation, like after `cluster.forget`); otherwise this side
 *    holds: it downs nobody and, being a minority, runs no singleton (fencing does that).
 *    - `keep-majority`: this side has more than half of the membership, or exactly half
 *      with its lowest id. Two disjoint sides cannot both (the lowest id is on one side).
 *    - `static-quorum`: this side has at least `quorum` members. Safe only while the
 *      membership is smaller than twice the quorum (two sides cannot both reach it); at
 *      that size or above this side holds, and says so.
 *    - `keep-oldest`: this side has the oldest member (earliest `startedAt`, then lowest
 *      id), which is on one side only.
 *    - `lease`: this node holds the lease (an etcd key, ...; see lease.ts), which one node
 *      at most holds at a time. The lease is the tie-breaker a two-node cluster needs: a
 *      crash and a partition look the same from either node, and only the lease says which
 *      one goes on. Whether this node holds it is an input (`view.lease`);
 *      lease-holder.ts acquires it when `needsLease` says so.
 */
import type { Member, MemberTable } from './types'
import { compareIds } from './table'

export type DowningStrategy = 'keep-majority' | 'static-quorum' | 'keep-oldest' | 'lease'

export const downingStrategies: readonly DowningStrategy[] = ['keep-majority', 'static-quorum', 'keep-oldest', 'lease']

export interface DowningPolicy {
  /** Which side of a split may remove the members it sees dead. @default 'keep-majority' */
  strategy: DowningStrategy
  /**
   * How long the membership must stay unchanged, with a member dead and none suspect,
   * before the dead are removed. Longer rides out slow failure detection and partitions
   * that heal quickly; shorter shrinks the cluster (and gives singletons back to the
   * survivors) sooner. Keep it well above the failure detector's `deadAfterMs`.
   * @default 3 × deadAfterMs
   */
  afterMs: number
  /** For `static-quorum`: the members a side needs. */
  quorum?: number
}

export type DowningDecision =
  | { kind: 'none' }
  | { kind: 'wait', reason: string }
  | { kind: 'hold', reason: string }
  | { kind: 'down', ids: string[], reason: string }

export interface DowningView {
  table: MemberTable
  self: string
  /** How long the membership (ids and statuses of the members not left) has been as it is. */
  stableForMs: number
  /** For `lease`: what this node knows of the lease now; absent: it has no lease plugin. */
  lease?: LeaseFact
}

/**
 * The lease as this node knows it: held by this node (with its fencing token), or not,
 * with who holds it when known and why this node does not when not.
 */
export type LeaseFact =
  | { held: true, key: string, token: number }
  | { held: false, key: string, holder?: string, token?: number, problem?: string }

/** What this node may do about the dead members of its table (see the top of this file). */
export function decideDowning (view: DowningView, policy: DowningPolicy): DowningDecision {
  const members = Object.values(view.table).filter((m) => m.status !== 'left').sort((a, b) => compareIds(a.id, b.id))
  const dead = members.filter((m) => m.status === 'dead' && m.id !== view.self)
  if (dead.length === 0) return { kind: 'none' }
  const suspect = members.filter((m) => m.status === 'suspect')
  if (suspect.length > 0) return { kind: 'wait', reason: `unstable: ${names(suspect)} suspect` }
  if (view.stableForMs < policy.afterMs) {
    return { kind: 'wait', reason: `membership stable for ${seconds(view.stableForMs)} of ${seconds(policy.afterMs)}` }
  }
  const side = members.filter((m) => m.status !== 'dead' || m.id === view.self)
  const seen = `${side.length} of ${members.length} members alive`
  const verdict = judge(policy, members, side, seen, view.lease)
  if (!verdict.ok) return { kind: 'hold', reason: `${policy.strategy}: ${verdict.why}; ${names(dead)} stay dead, this side downs nobody` }
  return { kind: 'down', ids: dead.map((m) => m.id), reason: `${policy.strategy}: ${verdict.why}; stable for ${seconds(view.stableForMs)}` }
}

function judge (policy: DowningPolicy, members: Member[], side: Member[], seen: string, lease: LeaseFact | undefined): { ok: boolean, why: string } {
  const onSide = (id: string): boolean => side.some((m) => m.id === id)
  switch (policy.strategy) {
    case 'keep-majority': {
      if (side.length * 2 > members.length) return { ok: true, why: `${seen}, a majority` }
      const lowest = members[0].id
      if (side.length * 2 === members.length && onSide(lowest)) return { ok: true, why: `${seen}, half, with the lowest id (${lowest})` }
      return { ok: false, why: `${seen}, not a majority` }
    }
    case 'static-quorum': {
      const q = policy.quorum ?? 0
      if (q < 1) return { ok: false, why: 'no quorum set' }
      if (members.length >= 2 * q) return { ok: false, why: `${members.length} members is too many for a quorum of ${q} (two sides could each reach it; raise quorum above ${Math.floor(members.length / 2)})` }
      if (side.length >= q) return { ok: true, why: `${seen}, at least the quorum of ${q}` }
      return { ok: false, why: `${seen}, below the quorum of ${q}` }
    }
    case 'keep-oldest': {
      const oldest = [...members].sort((a, b) => a.characteristics.startedAt - b.characteristics.startedAt || compareIds(a.id, b.id))[0]
      if (onSide(oldest.id)) return { ok: true, why: `${seen}, with the oldest (${oldest.id})` }
      return { ok: false, why: `${seen}, without the oldest (${oldest.id})` }
    }
    case 'lease': {
      if (lease === undefined) return { ok: false, why: 'no lease plugin on this node (image.json layers.lease)' }
      if (lease.held) return { ok: true, why: `this node holds ${lease.key}, token ${lease.token}` }
      if (lease.holder !== undefined) return { ok: false, why: `held by ${lease.holder} (${lease.key}${lease.token === undefined ? '' : `, token ${lease.token}`})` }
      return { ok: false, why: `${lease.key} not held${lease.problem === undefined ? '' : ` (${lease.problem})`}` }
    }
  }
}

/**
 * Whether this node should hold the lease now: the strategy is `lease` and the only thing
 * between it and downing the dead is the lease (the membership is stable). Once this is
 * true, lease-holder.ts acquires and keeps the lease (see there for when it lets go).
 */
export function needsLease (view: DowningView, policy: DowningPolicy): boolean {
  if (policy.strategy !== 'lease') return false
  const d = decideDowning({ ...view, lease: { held: true, key: '', token: 0 } }, policy)
  return d.kind === 'down'
}

/**
 * What must stay unchanged for `afterMs` before a decision: ids and status of the members
 * not left. Heartbeats and instances are not in it; a member coming back (a new
 * incarnation) or going suspect changes it.
 */
export function membershipSignature (table: MemberTable): string {
  return Object.values(table)
    .filter((m) => m.status !== 'left')
    .map((m) => `${m.id}\u0000${m.status}`)
    .sort(compareIds)
    .join('\u0001')
}

/** The default policy for a failure detector that declares death after `deadAfterMs`. */
export function defaultDowning (deadAfterMs: number): DowningPolicy {
  return { strategy: 'keep-majority', afterMs: 3 * deadAfterMs }
}

function names (ms: Member[]): string {
  const shown = ms.slice(0, 5).map((m) => m.id).join(', ')
  return ms.length > 5 ? `${shown} and ${ms.length - 5} more` : shown
}

function seconds (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}
