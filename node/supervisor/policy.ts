/**
 * What a supervised instance does next, decided apart from doing it: restart or not and
 * after how long, healthy or not, over its memory limit or not. Pure functions of events
 * and time (`now` is an argument); the instance's lifecycle (process.ts, process-restart.ts,
 * process-health.ts, process-memory.ts) reads its clock, does the I/O and calls them. Every default of a service's supervision is written here, once;
 * node/desired/types.ts documents the same values (test/unit/supervisor-defaults checks).
 *
 * @example
 *   let memory = freshRestarts()
 *   const d = afterExit({ policy: 'always' }, memory, { failed: true, ranForMs: 800 }, clock.now())
 *   if (d.kind === 'restart') clock.after(d.delayMs, spawn)   // 500 ms, then 1 s, 2 s, ...
 *   memory = d.memory
 */

/**
 * The defaults of a service's supervision, each with the trade-off it controls. These are
 * the values nodes have run since the start (the README's example says `restarting in
 * 0.5 s`); the spec documentation said 1000/60000 and 5000/2000 for a while, which no node
 * ever ran, so the documentation follows the code and behaviour stays as users know it.
 */
export const serviceDefaults = {
  /**
   * First restart delay (`restart.backoffMs`). Short, because most crashes are one-offs and
   * every millisecond here is an outage of that instance; a crash that repeats is caught by
   * the doubling and the crash-loop check, not by a long first wait.
   */
  backoffMs: 500,
  /**
   * Cap of the doubling delay (`restart.maxBackoffMs`). Higher spares a dependency that is
   * down (a database restarting) from a restart storm; lower gets a service back sooner
   * once the dependency is. 30 s is reached after 6 quick failures.
   */
  maxBackoffMs: 30_000,
  /** A run up this long resets the backoff: a crash after a day is not the 7th of a loop. */
  stableAfterMs: 10_000,
  /**
   * More than this many restarts within crashLoopWindowMs: failed, no more restarts. Fewer
   * gives up on a slow-to-start service too soon; more burns CPU (and log) on a loop.
   */
  crashLoopRestarts: 5,
  crashLoopWindowMs: 60_000,
  /** Time between SIGTERM and SIGKILL (`stopGraceMs`): longer lets work finish, slows every stop and rollout step. */
  stopGraceMs: 10_000,
  /**
   * Time between health checks (`health.intervalMs`). Shorter sees a failure (and a first
   * ready) sooner: a rollout step waits for ready, so this paces rollouts; longer costs the
   * service fewer requests. Unhealthy is declared after unhealthyAfter × this (6 s).
   */
  healthIntervalMs: 2000,
  /**
   * A check slower than this failed (`health.timeoutMs`). Checks go over loopback or the
   * node's own address, where 1 s is an eternity: a longer timeout mostly hides a stuck
   * process; a loaded machine is covered by needing unhealthyAfter failures in a row.
   */
  healthTimeoutMs: 1000,
  /** Failures this soon after start do not count (`health.startPeriodMs`): none, a process is `starting` until its first pass anyway. */
  healthStartPeriodMs: 0,
  /** Consecutive failed checks that turn a ready process unhealthy: one slow answer is not an outage. */
  unhealthyAfter: 3,
  /** How often an instance's RSS is read when it has a memory limit: sooner catches a fast leak, costs /proc reads. */
  sampleIntervalMs: 1000,
  /** Without a limit the sample only feeds the status: this many times rarer, so idle instances cost next to nothing. */
  unlimitedSampleFactor: 10
} as const

/** The supervisor's own defaults (SupervisorInit in types.ts). */
export const supervisorDefaults = {
  /**
   * Out of touch with a majority this long, a node gives its singletons up. Shorter fences
   * on a brief hiccup (a singleton restarts for nothing); longer leaves a window where the
   * others, once they declare this node dead, run it twice. The assembly passes membership's
   * suspectAfterMs, which is shorter than deadAfterMs by construction.
   */
  fenceAfterMs: 2500,
  /**
   * A start that fails before its process runs (a port taken, the state dir, the engine) is
   * tried again after this, doubling up to startRetryMaxMs: a cause that lasts is neither
   * retried in a tight loop nor logged for each try; one that passes costs a second.
   */
  startRetryMs: 1000,
  startRetryMaxMs: 60_000,
  /**
   * A singleton fenced on this node more than once within this window waits longer before
   * it starts here again: the quorum must hold fenceAfterMs x 2^(fences - 1), up to
   * fenceHoldMaxMs. A node that keeps losing touch (an overloaded machine, a flapping link)
   * otherwise starts and kills its singleton every few seconds, and each start (a process,
   * its state asked of every member) adds to the load that made it lose touch: on 2 cores
   * 50 nodes started one singleton 1,285 times in 14 minutes. One fence costs nothing more.
   */
  fenceWindowMs: 10 * 60_000,
  fenceHoldMaxMs: 60_000
} as const

/** The wait before start attempt `tries + 1` after `tries` failed ones. */
export function startRetryDelay (tries: number): number {
  return Math.min(supervisorDefaults.startRetryMaxMs, supervisorDefaults.startRetryMs * 2 ** Math.max(0, tries - 1))
}

/**
 * How long the quorum must hold before a singleton starts here again, given when it was
 * fenced here (oldest first; those older than fenceWindowMs do not count).
 */
export function fenceHoldMs (fenceAfterMs: number, fencedAt: readonly number[], now: number): { ms: number, fences: number } {
  const fences = fencedAt.filter((t) => now - t < supervisorDefaults.fenceWindowMs).length
  return { ms: Math.min(Math.max(fenceAfterMs, supervisorDefaults.fenceHoldMaxMs), fenceAfterMs * 2 ** Math.max(0, fences - 1)), fences }
}

export type RestartPolicy = 'always' | 'on-failure' | 'never'

export interface RestartSettings {
  policy: RestartPolicy
  backoffMs?: number
  maxBackoffMs?: number
  stableAfterMs?: number
  crashLoopRestarts?: number
  crashLoopWindowMs?: number
}

/** What the restart policy remembers between runs: the backoff exponent and recent restart times. */
export interface RestartMemory {
  /** Consecutive restarts since the last stable run. */
  attempt: number
  /** When restarts happened (ms), within the crash-loop window. */
  restartTimes: number[]
}

export type RestartDecision =
  | { kind: 'restart', delayMs: number, attempt: number, memory: RestartMemory }
  /** Not restarted: the policy says so (`failed` when the run failed). */
  | { kind: 'final', state: 'stopped' | 'failed', memory: RestartMemory }
  | { kind: 'crash-loop', restarts: number, windowMs: number, memory: RestartMemory }

export function freshRestarts (): RestartMemory {
  return { attempt: 0, restartTimes: [] }
}

/** The delay before restart number `attempt` (1-based): doubling from backoffMs, capped. */
export function backoffDelay (attempt: number, backoffMs: number = serviceDefaults.backoffMs, maxBackoffMs: number = serviceDefaults.maxBackoffMs): number {
  return Math.min(backoffMs * 2 ** Math.max(0, attempt - 1), maxBackoffMs)
}

/**
 * After a run ended (`ranForMs` undefined: it never started): restart it, and when, or not.
 * A run that lasted stableAfterMs starts the backoff afresh.
 */
export function afterExit (s: RestartSettings, memory: RestartMemory, run: { failed: boolean, ranForMs?: number }, now: number): RestartDecision {
  const stable = run.ranForMs !== undefined && run.ranForMs >= (s.stableAfterMs ?? serviceDefaults.stableAfterMs)
  const attempt = stable ? 0 : memory.attempt
  if (!(s.policy === 'always' || (s.policy === 'on-failure' && run.failed))) {
    return { kind: 'final', state: run.failed ? 'failed' : 'stopped', memory: { ...memory, attempt } }
  }
  const restarts = s.crashLoopRestarts ?? serviceDefaults.crashLoopRestarts
  const windowMs = s.crashLoopWindowMs ?? serviceDefaults.crashLoopWindowMs
  const recent = memory.restartTimes.filter((t) => now - t < windowMs)
  if (recent.length >= restarts) return { kind: 'crash-loop', restarts, windowMs, memory: { attempt, restartTimes: recent } }
  const next = attempt + 1
  return {
    kind: 'restart',
    delayMs: backoffDelay(next, s.backoffMs, s.maxBackoffMs),
    attempt: next,
    memory: { attempt: next, restartTimes: [...recent, now] }
  }
}

export type HealthState = 'starting' | 'ready' | 'unhealthy'

export interface HealthVerdict {
  /** Consecutive failures that counted, after this check. */
  failures: number
  /** The new state, when it changes. */
  state?: HealthState
  /** The status reason after this check (undefined: cleared) when it changes. */
  reason?: string | undefined
  /** Whether `reason` is part of the answer (a change to undefined is one). */
  setsReason: boolean
}

/**
 * One health check's answer, for a run in `state` with `failures` counted so far: a pass
 * makes a starting or unhealthy run ready; failures count only after the start period,
 * and unhealthyAfter of them in a row turn a ready run unhealthy. A starting run stays
 * starting (with the reason) however often it fails: it never was ready.
 */
export function afterCheck (state: HealthState, failures: number, result: { ok: boolean, detail: string }, sinceStartMs: number, h: { startPeriodMs?: number, unhealthyAfter?: number } = {}): HealthVerdict {
  if (result.ok) {
    return state === 'ready' ? { failures: 0, setsReason: false } : { failures: 0, state: 'ready', reason: undefined, setsReason: true }
  }
  const reason = `health check failing: ${result.detail}`
  if (state === 'starting') return { failures, reason, setsReason: true }
  if (sinceStartMs < (h.startPeriodMs ?? serviceDefaults.healthStartPeriodMs)) return { failures, setsReason: false }
  const counted = failures + 1
  if (state === 'unhealthy') return { failures: counted, reason, setsReason: true }
  if (counted >= (h.unhealthyAfter ?? serviceDefaults.unhealthyAfter)) return { failures: counted, state: 'unhealthy', reason, setsReason: true }
  return { failures: counted, setsReason: false }
}

/**
 * A memory sample's verdict: the reason to kill the run, or undefined. Only over the limit,
 * only when the runtime does not hold the limit itself (a container's cgroup kills and
 * says so), and not twice or while the run is stopping anyway.
 */
export function overMemory (sample: { rssKb: number, pids: number }, o: { limitMb?: number, enforcedByRuntime: boolean, alreadyKilling: boolean, stopping: boolean, scope: string }): string | undefined {
  const limit = o.limitMb
  if (limit === undefined || o.enforcedByRuntime || o.alreadyKilling || o.stopping || sample.rssKb <= limit * 1024) return undefined
  // Rounded up: just over the limit must not read as at it ("rss 250 MB" over 250 MB).
  return `exceeded memory limit ${limit} MB: rss ${Math.ceil(sample.rssKb / 1024)} MB (${o.scope}, ${sample.pids} process${sample.pids === 1 ? '' : 'es'})`
}

/**
 * How often to sample, and how long until the first sample: on multiples of the interval
 * on the clock, so every instance of the node samples at the same moment and one scan of
 * /proc serves them all.
 */
export function samplingClock (now: number, hasLimit: boolean, baseMs: number = serviceDefaults.sampleIntervalMs): { everyMs: number, firstInMs: number } {
  const everyMs = hasLimit ? baseMs : baseMs * serviceDefaults.unlimitedSampleFactor
  return { everyMs, firstInMs: everyMs - (now % everyMs) }
}

export function fmtDelay (ms: number): string {
  return ms < 100 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`
}

export function fmtWindow (ms: number): string {
  const s = ms / 1000
  return Number.isInteger(s) ? `${s} s` : `${s.toFixed(1)} s`
}
