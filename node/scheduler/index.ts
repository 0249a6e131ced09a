/**
 * scheduler: a pure, deterministic function from (spec, member table, hub set, previous
 * phase) to the phase, the assignments, and what could not be placed and why. No clock, no
 * I/O, no randomness: every node computes the same answer from the same view, so nothing
 * is elected. The supervisor runs `assignmentsFor(schedule, self)` and reads the phase.
 *
 * Hosts are the members with status `alive` or `suspect`; `dead` and `left` never host.
 * A suspect counts as up both for the phase and for placement, so a short hiccup (a
 * missed heartbeat, later refuted) moves nothing and pauses nothing; its instances move
 * once the member is declared dead.
 * A member an operator drained (`characteristics.drained`) counts for the phase and hosts
 * nothing.
 * A member that says it is unhealthy (`characteristics.unhealthy`: node/health) counts for
 * the phase and is a host of last resort: its singletons and replicas move to healthy hosts
 * that can take them, and it is given new ones only when no healthy host can (a cluster
 * unhealthy everywhere, e.g. all under load, keeps running rather than stopping
 * everything). Its node-bound instances (`every`, `hubs`) stay: they have nowhere else to
 * go. Once it recovers nothing moves back (stickiness), so a flickering node does not
 * bounce singletons.
 *
 * @example
 *   const s = schedule({ spec, table: membership.table(), hubs: hubs.current(), previousPhase })
 *   s.phase.reason                 // 'running: 3 nodes (minNodes 3)'
 *   assignmentsFor(s, 'node-a')    // [{ service: 'web', instance: 'web-1', node: 'node-a' }, ...]
 *   s.unschedulable                // [{ service: 'db', instance: 'db-0', reason: 'needs 4096 MB, largest free is 2048 MB on node-b' }]
 */
import type { Member, MemberTable } from '../membership/types'
import { compareEntries, compareIds } from '../membership/table'
import type { Spec } from '../desired/types'
import { computePhase } from './phase'
import { placeServices } from './place'
import type { Assignment, AssignmentDiff, PhaseKind, Schedule } from './types'
import { compareInstances } from '../vocabulary'

export type { Assignment, AssignmentDiff, Phase, PhaseKind, Schedule, Unschedulable } from './types'
export { computePhase } from './phase'

export interface ScheduleInput {
  spec: Spec
  table: MemberTable
  /** The hub set (ids); ids that are not alive or suspect in `table` are ignored. */
  hubs: string[]
  /** The phase this node computed last; undefined at start. */
  previousPhase?: PhaseKind
}

/** What computes the schedule: `schedule` below, or a replacement given to the supervisor as a component. */
export type ScheduleFn = (input: ScheduleInput) => Schedule

/**
 * The phase, then the assignments: none while `forming` or `degraded` with policy `stop`;
 * while `degraded` with `pause` or `keep`, the same as when running (the supervisor pauses
 * or keeps them as the phase says).
 */
export function schedule (input: ScheduleInput): Schedule {
  const hosts = Object.values(input.table)
    .filter((m) => m.status === 'alive' || m.status === 'suspect')
    .sort((a, b) => compareIds(a.id, b.id) || compareEntries(a, b))
  const phase = computePhase(hosts.length, input.spec.cluster, input.previousPhase)
  if (phase.kind === 'forming' || (phase.kind === 'degraded' && phase.policy === 'stop')) {
    return { phase, assignments: [], unschedulable: [] }
  }
  // A drained member still counts for the phase, but hosts nothing: its instances move as if it had left.
  const unhealthy = new Set(hosts.filter((m) => m.characteristics.unhealthy !== undefined).map((m) => m.id))
  const placed = placeServices(input.spec.services, uniqueById(hosts.filter((m) => m.characteristics.drained !== true)), input.hubs, unhealthy)
  return {
    phase,
    assignments: placed.assignments.sort(compareAssignments),
    unschedulable: placed.unschedulable.sort(compareAssignments)
  }
}

/** The service an instance id belongs to: `web-0` -> web, `agent@node-1` -> agent. */
export function serviceOfInstance (instance: string): string {
  return instance.replace(/(-\d+|@.*)$/, '')
}

/** The instances `nodeId` should run. */
export function assignmentsFor (schedule: Schedule, nodeId: string): Assignment[] {
  return schedule.assignments.filter((a) => a.node === nodeId)
}

/**
 * What changed between two assignment lists, instances matched by (service, instance):
 * `moved` to another node, `added` (only in `after`), `removed` (only in `before`).
 * Each list sorted like `Schedule.assignments`.
 */
export function diffAssignments (before: Assignment[], after: Assignment[]): AssignmentDiff {
  const key = (a: Assignment): string => `${a.service}\n${a.instance}`
  const was = new Map(before.map((a) => [key(a), a]))
  const now = new Map(after.map((a) => [key(a), a]))
  const diff: AssignmentDiff = { moved: [], added: [], removed: [] }
  for (const a of [...now.values()].sort(compareAssignments)) {
    const b = was.get(key(a))
    if (b === undefined) diff.added.push(a)
    else if (b.node !== a.node) diff.moved.push({ service: a.service, instance: a.instance, from: b.node, to: a.node })
  }
  diff.removed = [...was.values()].filter((b) => !now.has(key(b))).sort(compareAssignments)
  return diff
}

/**
 * By service, then instance: `name-<n>` ids by n (so web-2 comes before web-10), others
 * (`name@node`) by code units, after them; a service-level entry (no instance) first.
 */
export function compareAssignments (a: { service: string, instance?: string }, b: { service: string, instance?: string }): number {
  return compareIds(a.service, b.service) || compareOptionalInstances(a.instance, b.instance)
}

function compareOptionalInstances (a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1
  return compareInstances(a, b)
}

/** Two entries with one id (a table keyed otherwise) would host twice; keep the first. */
function uniqueById (hosts: Member[]): Member[] {
  return hosts.filter((m, i) => i === 0 || hosts[i - 1].id !== m.id)
}
