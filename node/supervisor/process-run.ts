/**
 * One run of an instance, from the runtime's start to its exit: the request the runtime
 * gets, and following the run once it exists (its start said in both logs, its status,
 * its health checks and memory samples, its end handed back to the lifecycle). Which run
 * is current and what happens after it ends is the lifecycle's (process.ts).
 */
import type { Clock } from '../clock'
import type { HealthSpec } from '../desired/types'
import type { Logger } from '../log'
import type { Program, RunExit, RunHandle, Runtime } from '../runtime/contract'
import { NOT_STARTED, processRuntime } from '../runtime/process'
import type { LineStamper } from '../logfile'
import type { HealthState, HealthVerdict } from './policy'
import { checkHealth, healthAs } from './process-health'
import type { InstanceLog } from './process-log'
import { startSampling } from './process-memory'
import { after, type InstanceState, type InstanceStatus, type ManagedProcessOptions, type Run } from './process-types'

/** The run's stdout and stderr, cut into stamped lines; ended once the run has exited. */
export interface RunStreams { out: LineStamper, err: LineStamper }

/** What following a run needs of the lifecycle. */
export interface RunHost {
  o: ManagedProcessOptions
  clock: Clock
  log: Logger
  ilog: InstanceLog
  /** The health check as run (a command check as the instance's user). */
  health: HealthSpec | undefined
  /** `run` is still the current run. */
  live: (run: Run) => boolean
  state: () => InstanceState
  update: (patch: Partial<InstanceStatus>) => void
  /** A memory sample, for the status (not a change of state: no event). */
  sampled: (rssMb: number) => void
  /** Its main process is gone (the fence stops covering it). */
  gone: () => void
  /** Everything in it ended and its output drained. */
  exited: (run: Run, exit: RunExit) => void
}

/** What starting a run tells the lifecycle. */
export interface SpawnEvents {
  /** An asynchronous runtime is creating the run (a container). */
  creating: () => void
  /** The run exists; `late` when an asynchronous runtime made it (the lifecycle may have moved on meanwhile). */
  created: (handle: RunHandle, streams: RunStreams, late: boolean) => void
  /** No run: the runtime threw, or its creation failed. */
  failed: (e: unknown) => void
}

/** A new run: at once from a runtime that starts synchronously, else once it exists; the promise while it is being created. */
export function spawnRun (o: ManagedProcessOptions, runtime: Runtime, log: Logger, ilog: InstanceLog, on: SpawnEvents): Promise<void> | undefined {
  const streams = ilog.streams()
  let started: RunHandle | Promise<RunHandle>
  try {
    started = startRun(o, runtime, log, streams)
  } catch (e) {
    on.failed(e)
    return undefined
  }
  if (!(started instanceof Promise)) { on.created(started, streams, false); return undefined }
  on.creating()
  return started.then((handle) => { on.created(handle, streams, true) }, (e) => { on.failed(e) })
}

/** Asks the runtime for a run of the instance; throws (or the promise rejects) when it cannot start one. */
function startRun (o: ManagedProcessOptions, runtime: Runtime, log: Logger, streams: RunStreams): RunHandle | Promise<RunHandle> {
  const program: Program = o.image === undefined
    ? { kind: 'command', command: o.command, cwd: o.cwd }
    : { kind: 'image', image: o.image.ref, service: o.image.service, workdir: o.image.workdir }
  return runtime.start({
    id: o.id,
    program,
    args: o.args,
    env: o.env,
    user: o.user,
    memoryLimitMb: o.memoryLimitMb,
    ...(o.cpu === undefined ? {} : { cpu: o.cpu }),
    log,
    output: (stream, chunk) => (stream === 'out' ? streams.out : streams.err)(chunk)
  })
}

/** The runtime runs start on, and the health check as run: a command check as the instance's user. */
export function runtimeOf (o: ManagedProcessOptions): { runtime: Runtime, health: HealthSpec | undefined } {
  const processes = o.runtime === undefined ? processRuntime({ containment: o.containment, recordDir: o.recordDir }) : undefined
  const runtime = o.runtime ?? processes!
  // A command check of a container service runs on the node, as the node (see README "Containers").
  const health = o.image === undefined ? healthAs(o.health, o.user, (processes?.containment ?? o.containment)?.setpriv) : o.health
  return { runtime, health }
}

/**
 * How a run ended, in words: `line` for the instance log, `what` for the status (origin's
 * own kill reason wins over the bare signal), whether it failed, and how long it ran.
 */
export function endOf (run: Run, exit: RunExit, memoryLimitMb: number | undefined, now: number): { line: string, what: string, failed: boolean, ranForMs: number } {
  const { code, signal } = exit
  const line = exit.reason ?? (exit.oomKilled === true
    ? `killed: out of memory (limit ${memoryLimitMb ?? '?'} MiB)`
    : signal !== null ? `killed by ${signal}` : `exited with code ${code ?? '?'}`)
  const failed = run.killReason !== undefined || exit.oomKilled === true || exit.reason !== undefined || signal !== null || code !== 0
  return { line, what: run.killReason ?? line, failed, ranForMs: (run.goneAt ?? now) - run.startedAt }
}

export function newRun (handle: RunHandle, now: number): Run {
  return { handle, startedAt: now, exited: false, timers: new Set(), failures: 0, sampling: false }
}

/** Follows `run` until it has exited; `ending`: it was stopped while being created, so it is not checked nor sampled. */
export function followRun (run: Run, streams: RunStreams, host: RunHost, ending = false): void {
  const { handle } = run
  void handle.gone.then(() => {
    run.exited = true
    run.goneAt = host.clock.now()
    for (const t of run.timers) t.cancel()
    run.timers.clear()
    // The runtime stopped signalling this run's pids when it saw it gone, whatever untrack sets off.
    host.gone()
  })
  void handle.exit.then((exit) => {
    streams.out.end()
    streams.err.end()
    host.exited(run, exit)
  })
  if (handle.started === NOT_STARTED) {
    // Never started (the spawn failed on the next tick): the exit says why, like a throw.
    host.update({ state: 'starting', startedAt: host.clock.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: undefined })
    return
  }
  const { o, log, ilog, clock, health } = host
  const container = /^container ([0-9a-f]+)/.exec(handle.started)?.[1]
  const what = o.image === undefined ? [o.command, ...o.args].join(' ') : [o.image.ref, ...o.args].join(' ')
  ilog.origin(`started ${handle.started}${o.user === undefined ? '' : ` as uid ${o.user.uid}`}: ${what}`)
  log.info(`started ${handle.started}`)
  if (ending) return
  host.update({
    state: health === undefined ? 'ready' : 'starting',
    reason: health === undefined ? undefined : 'waiting for the first health check to pass',
    pid: handle.pid,
    container,
    startedAt: run.startedAt,
    exitCode: undefined,
    signal: undefined,
    rssMb: undefined
  })
  if (health !== undefined) {
    const ctx = { cwd: o.cwd, env: o.env, user: o.user }
    after(run, clock, 0, () => { void checkHealth(run, health, ctx, { clock, live: host.live, state: host.state, apply: (v, was, detail) => { applyVerdict(host, v, was, detail) } }) })
  }
  startSampling(run, { limitMb: o.memoryLimitMb, sampleIntervalMs: o.sampleIntervalMs }, {
    clock,
    live: host.live,
    sampled: host.sampled,
    busy: () => ({ killing: run.killReason !== undefined, stopping: host.state() === 'stopping' }),
    kill: (reason) => {
      run.killReason = reason
      ilog.origin(`${reason}: SIGKILL to ${handle.what}`)
      log.warn(`${reason}: killing it`)
      handle.kill()
    },
    log
  })
}

/** A health verdict (policy.ts afterCheck) said in both logs and applied to the status. */
function applyVerdict (host: RunHost, v: HealthVerdict, was: HealthState, detail: string): void {
  if (v.state === 'ready') {
    host.ilog.origin(was === 'starting' ? `ready (${detail})` : `healthy again (${detail})`)
    host.log.info(was === 'starting' ? 'ready' : 'healthy again')
  } else if (v.state === 'unhealthy') {
    host.ilog.origin(`unhealthy: ${v.reason ?? detail}`)
    host.log.warn(`unhealthy: ${v.reason ?? detail}`)
  }
  if (v.state !== undefined || v.setsReason) host.update({ ...(v.state === undefined ? {} : { state: v.state }), ...(v.setsReason ? { reason: v.reason } : {}) })
}
