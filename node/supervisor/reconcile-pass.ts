/**
 * One reconcile pass over this node's assignments, once the schedule is known: ask the
 * pure plan (plan.ts) what to do with what runs here, the quorum and the time, prepare the
 * code of each assigned instance (the slow part: a fetch, a build), and hand the actions to
 * the executor as they come, so a start need not wait for another service's build.
 */
import type { Clock } from '../clock'
import type { Applied } from '../desired'
import type { MemberTable } from '../membership'
import type { Schedule } from '../scheduler'
import type { CodePreparer, PreparedRun, Wanted } from './code-prepare'
import type { Executor } from './executor'
import type { FenceClock } from './fence-clock'
import { plan, type PlanAction } from './plan'

export interface PassInput {
  self: string
  applied: Applied
  schedule: Schedule
  table: MemberTable
  executor: Executor
  fence: FenceClock
  code: CodePreparer
  clock: Clock
}

export async function reconcileAssigned ({ self, applied, schedule, table, executor: x, fence, code, clock }: PassInput): Promise<void> {
  const mine = schedule.assignments.filter((a) => a.node === self)
  const { inTouch, quorum, fenceMs } = fence.view(table, applied.spec.cluster.downing?.strategy === 'lease')
  const now = clock.now()
  const planFor = (versions: Record<string, Wanted>): PlanAction[] => {
    const p = plan({
      self,
      schedule,
      services: applied.spec.services,
      local: Object.fromEntries([...x.instances].map(([id, i]) => [id, { service: i.assignment.service, version: i.version, state: i.proc.status().state }])),
      busy: x.busy,
      versions,
      table,
      inTouch,
      quorum,
      quorumSince: fence.since,
      fenceAfterMs: fenceMs,
      startFailures: Object.fromEntries(x.startFailures),
      fenced: Object.fromEntries(x.fencedAt),
      now
    })
    fence.since = p.quorumSince
    return p.actions
  }
  // First what stops (not assigned here, fenced): no code is needed to decide it.
  x.carryOut(planFor({}), new Map(), applied)
  x.forgetUnassigned(new Set(mine.map((a) => a.instance)))
  for (const a of mine) {
    if (x.busy.has(a.instance)) continue
    const { wanted, run } = await code.prepare(a, applied.spec.services[a.service], applied)
    x.carryOut(planFor({ [a.instance]: wanted }), new Map<string, PreparedRun>(run === undefined ? [] : [[a.instance, run]]), applied)
  }
  x.publish()
  await code.pruneUnused(applied.version, [...x.instances.values()].map((i) => i.codeDir))
}
