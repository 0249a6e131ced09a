/**
 * The supervisor's decisions, apart from doing them: from the schedule, what runs here, the
 * member table, the quorum and the time, which instances to start, stop, replace, pause,
 * resume, or leave waiting (and why, in words). No clock, no I/O, no randomness: `now` is an
 * argument and the answer is data. One reconcile pass (reconcile-pass.ts) gathers the
 * inputs, prepares code, calls `plan` with the supervisor's clock.now(), and the executor
 * (executor.ts) carries the actions out and publishes.
 *
 * @example
 *   const p = plan({ self: 'node-a', schedule: s, services, local, busy, versions, table, inTouch,
 *     quorum, quorumSince, fenceAfterMs: 2500, startFailures: {}, now: clock.now() })
 *   p.actions   // [{ kind: 'start', assignment: { service: 'web', instance: 'web-0', node: 'node-a' }, version: 'v1' }]
 */
import type { MemberTable } from '../membership/types'
import type { Assignment, PhaseKind, Schedule } from '../scheduler/types'
import type { ScheduleFn } from '../scheduler'
import type { ServiceSpec, Spec } from '../desired/types'
import { fenceHoldMs, supervisorDefaults } from './policy'
import { mayReplace, runningElsewhere } from './rolling'

/** One instance this node runs, as the plan sees it. */
export interface LocalInstance {
  service: string
  version: string
  /** Its lifecycle state (process.ts InstanceState). */
  state: string
}

export interface PlanInput {
  self: string
  schedule: Schedule
  services: Record<string, Pick<ServiceSpec, 'placement'>>
  /** What runs here, by instance id. */
  local: Record<string, LocalInstance>
  /** Instances with a start or stop under way: left alone until it ends. */
  busy: ReadonlySet<string>
  /**
   * The version each instance assigned here should run, once its code is prepared; or why
   * it cannot be prepared (and when trying again may help). Instances missing here and not
   * busy are not decided on.
   */
  versions: Record<string, { version: string } | { error: string, retryAt?: number }>
  table: MemberTable
  /** Members this node heard from (or reached) lately: a stale `dead` among them still counts. */
  inTouch: ReadonlySet<string>
  /** May this side of a partition run singletons (rolling.ts singletonQuorum). */
  quorum: { ok: boolean, reason: string }
  /** Since when the quorum has held, as the previous plan said; undefined when it did not. */
  quorumSince?: number
  /** A singleton starts only once the quorum has held this long. */
  fenceAfterMs: number
  /** Starts that failed before their process ran: not tried again before `at`. */
  startFailures: Record<string, { at: number, said: string }>
  /** When singletons were fenced here lately, by instance (oldest first): each more fence makes the quorum hold longer before a start (policy.ts fenceHoldMs). */
  fenced?: Record<string, readonly number[]>
  now: number
}

export type PlanAction =
  /** Stop and forget it; `atOnce`: SIGKILL, no grace (fenced). */
  | { kind: 'stop', instance: string, reason: string, atOnce: boolean }
  /** Stop the old version, announced as `replacing` until the new one starts (a later plan starts it). */
  | { kind: 'replace', instance: string, from: string, to: string }
  | { kind: 'start', assignment: Assignment, version: string }
  /** Assigned here and not (re)started now, for `reason`; plan again at `retryAt` if given. */
  | { kind: 'wait', instance: string, reason: string, level: 'info' | 'warn', retryAt?: number }
  /** Runs as asked: nothing waits. */
  | { kind: 'keep', instance: string }
  | { kind: 'pause', instance: string, reason: string }
  | { kind: 'resume', instance: string, reason: string }

export interface Plan {
  actions: PlanAction[]
  /** The quorum clock to hand to the next plan. */
  quorumSince?: number
}

const notRunning = new Set(['paused', 'stopped', 'failed'])

export function plan (p: PlanInput): Plan {
  const actions: PlanAction[] = []
  const mine = new Map(p.schedule.assignments.filter((a) => a.node === p.self).map((a) => [a.instance, a]))
  const isSingleton = (service: string): boolean => p.services[service]?.placement.kind === 'singleton'
  // Singletons start only once the quorum has held for fenceAfterMs: a node back from a
  // partition first lets stale views (someone "dead" who is not) be refuted.
  const quorumSince = !p.quorum.ok ? undefined : p.quorumSince ?? p.now
  const stopping = new Set<string>()
  for (const [id, inst] of Object.entries(p.local)) {
    if (p.busy.has(id)) continue
    if (!mine.has(id)) {
      actions.push({ kind: 'stop', instance: id, reason: 'no longer assigned to this node', atOnce: false })
      stopping.add(id)
    } else if (!p.quorum.ok && isSingleton(inst.service)) {
      actions.push({ kind: 'stop', instance: id, reason: `fenced: ${p.quorum.reason}`, atOnce: true })
      stopping.add(id)
    }
  }
  const phase = p.schedule.phase
  const paused = phase.kind === 'degraded' && phase.policy === 'pause'
  for (const a of mine.values()) {
    const id = a.instance
    const wanted = p.versions[id]
    if (p.busy.has(id) || stopping.has(id) || wanted === undefined) continue
    const wait = (reason: string, level: 'info' | 'warn' = 'info', retryAt?: number): void => {
      actions.push({ kind: 'wait', instance: id, reason, level, ...(retryAt === undefined ? {} : { retryAt }) })
    }
    // The old version (if any) keeps running; the rollout shows as stuck with the reason.
    if ('error' in wanted) { wait(wanted.error, 'warn', wanted.retryAt); continue }
    const existing = p.local[id]
    if (existing !== undefined && existing.version === wanted.version) {
      actions.push({ kind: 'keep', instance: id })
      if (paused && !notRunning.has(existing.state)) actions.push({ kind: 'pause', instance: id, reason: phase.reason })
      else if (phase.kind === 'running' && existing.state === 'paused') actions.push({ kind: 'resume', instance: id, reason: phase.reason })
      continue
    }
    if (paused) { wait('phase degraded: nothing new starts'); continue }
    if (existing !== undefined) {
      const turn = mayReplace(id, wanted.version, p.schedule.assignments, p.table, (x) => p.local[x])
      if (!turn.ok) { wait(`new version ${wanted.version} waits for ${turn.waitingFor ?? '?'} to be ready on it`); continue }
      actions.push({ kind: 'replace', instance: id, from: existing.version, to: wanted.version })
      continue
    }
    if (isSingleton(a.service)) {
      if (!p.quorum.ok) { wait(p.quorum.reason); continue }
      const hold = fenceHoldMs(p.fenceAfterMs, p.fenced?.[id] ?? [], p.now)
      const since = quorumSince ?? p.now
      if (p.now - since < hold.ms) {
        const lately = hold.fences > 1 ? ` (fenced here ${hold.fences} times in the last ${supervisorDefaults.fenceWindowMs / 60_000} min)` : ''
        wait(`${p.quorum.reason}; starting once that has held for ${(hold.ms / 1000).toFixed(1)} s${lately}`, 'info', hold.fences > 1 ? since + hold.ms : undefined)
        continue
      }
      const elsewhere = runningElsewhere(p.table, id, p.self, p.inTouch)
      if (elsewhere.length > 0) { wait(`singleton still ${elsewhere[0].state} on ${elsewhere[0].node}; starting once it stops`); continue }
    }
    const failed = p.startFailures[id]
    if (failed !== undefined && failed.at > p.now) { wait(failed.said, 'warn', failed.at); continue }
    actions.push({ kind: 'start', assignment: a, version: wanted.version })
  }
  return { actions, ...(quorumSince === undefined ? {} : { quorumSince }) }
}

/**
 * Who runs each of this node's instances once it has left: the same pure schedule, with
 * this node gone (its migrate-mode state directories are handed over to them).
 */
export function successors (o: {
  self: string
  spec: Spec
  table: MemberTable
  hubs: string[]
  previousPhase?: PhaseKind
  local: Iterable<string>
  schedule: ScheduleFn
}): Map<string, string> {
  const table = { ...o.table }
  if (table[o.self] !== undefined) table[o.self] = { ...table[o.self], status: 'left', instances: {} }
  const after = o.schedule({ spec: o.spec, table, hubs: o.hubs.filter((h) => h !== o.self), previousPhase: o.previousPhase })
  const local = new Set(o.local)
  return new Map(after.assignments.filter((a) => local.has(a.instance)).map((a) => [a.instance, a.node]))
}
