/**
 * One supervised instance: each run started by its runtime (node/runtime: by default its
 * command spawned contained, its own PID namespace where the node can, see contain.ts;
 * else its own process group; or a Docker container), its output and that of everything
 * it starts stamped into a rotating instance log, restarted by policy with exponential
 * backoff, stopped after a crash loop, health-checked, held to a memory limit over all its
 * processes, and never left behind: no process outlives its instance.
 *
 * This file is the lifecycle state machine (start, stop, kill, pause, resume, and what a
 * run's end leads to). What to do after an exit, a health check or a memory sample is
 * decided by pure functions in policy.ts; one run from the runtime's start to its exit is
 * process-run.ts, restart scheduling process-restart.ts, the instance log process-log.ts,
 * the health loop process-health.ts, memory sampling process-memory.ts, the status and
 * options types process-types.ts.
 *
 * @example
 *   const p = new ManagedProcess({ id: 'web-1', command: 'node', args: ['server.js'], env: { PORT: '8080' },
 *     cwd: '/srv/web', logPath: '/var/origin/logs/web-1.log', log, restart: { policy: 'always' },
 *     health: { http: { port: 8080, path: '/health' } }, memoryLimitMb: 256,
 *     containment: await probeContainment(), recordDir: '/var/origin/run' })
 *   p.on('status', (s) => log.info(`${s.state} ${s.reason ?? ''}`))
 *   p.start()
 *   await waitReady(p, 30_000)
 *   await p.stop()          // SIGTERM to the instance, SIGKILL after stopGraceMs
 */
import { EventEmitter } from 'node:events'
import { systemClock, type Clock } from '../clock'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import type { RunExit, RunHandle, Runtime } from '../runtime/contract'
import { serviceDefaults } from './policy'
import { InstanceLog } from './process-log'
import { RestartSchedule, restartSettings } from './process-restart'
import { endOf, followRun, newRun, runtimeOf, spawnRun, type RunHost, type RunStreams, type SpawnEvents } from './process-run'
import { StopGrace } from './process-stop'
import { Pause } from './process-pause'
import { patched, type InstanceStatus, type ManagedProcessOptions, type Run } from './process-types'
import type { Usage } from './procfs'
import type { Fenced } from './watchdog'

export type { InstanceState, InstanceStatus, ManagedProcessOptions } from './process-types'
export { killAllGroups, waitReady } from './process-wait'

export class ManagedProcess extends EventEmitter<{ status: [InstanceStatus] }> implements Fenced {
  readonly id: string
  private readonly o: ManagedProcessOptions
  private readonly log: Logger
  private readonly ilog: InstanceLog
  private readonly clock: Clock
  private readonly restarts: RestartSchedule
  private readonly runtime: Runtime
  /** What following a run needs of this lifecycle (process-run.ts). */
  private readonly host: RunHost
  private st: InstanceStatus = { state: 'stopped', restarts: 0 }
  private run: Run | undefined
  /** A run being started by an asynchronous runtime (a container being created). */
  private launching: Promise<void> | undefined
  private readonly grace: StopGrace
  /** stop() or kill() was asked: the next exit is final. */
  private noRestart = false
  private startAfterStop = false
  private readonly paused: Pause

  constructor (opts: ManagedProcessOptions) {
    super()
    this.id = opts.id
    this.o = opts
    this.clock = opts.clock ?? systemClock
    this.log = opts.log.child(opts.id)
    this.ilog = new InstanceLog(opts.logPath, { maxBytes: opts.logMaxBytes, keep: opts.logKeep }, this.log)
    this.grace = new StopGrace(this.ilog, this.log)
    this.restarts = new RestartSchedule(this.clock, restartSettings(opts))
    const { runtime, health } = runtimeOf(opts)
    this.runtime = runtime
    const update = (patch: Partial<InstanceStatus>): void => this.update(patch)
    this.host = {
      o: opts, clock: this.clock, log: this.log, ilog: this.ilog, health, update,
      live: (r) => this.run === r,
      state: () => this.st.state,
      sampled: (rssMb) => { this.st.rssMb = rssMb },
      gone: () => this.o.fence?.untrack(this),
      exited: (r, exit) => this.afterExit(r, exit)
    }
    this.paused = new Pause({
      ilog: this.ilog, log: this.log, update, runtimeKind: runtime.kind,
      status: () => this.st,
      run: () => this.run,
      creating: () => this.launching !== undefined,
      cancelRestart: () => this.restarts.cancel(),
      restart: () => this.respawn()
    })
  }

  /** How the watchdog ends the running instance without the node (see RunHandle.fenceTargets). */
  fenceTargets (): string[] {
    return this.run?.handle.fenceTargets() ?? []
  }

  status (): InstanceStatus {
    return { ...this.st }
  }

  /**
   * The live processes of the running instance (host pids), their summed RSS and CPU time
   * (clock ticks, USER_HZ); undefined when nothing runs. From a /proc scan shared with every
   * instance asking within 250 ms.
   */
  async usage (): Promise<Usage | undefined> {
    return await this.run?.handle.usage()
  }

  /** Starts the process; a no-op if it runs, waits in backoff or is paused. After stop() or failed, starts afresh. */
  start (): void {
    if (this.st.state === 'stopping') {
      this.startAfterStop = true
      return
    }
    if (this.st.state !== 'stopped' && this.st.state !== 'failed') return // running, starting, in backoff or paused
    this.noRestart = false
    this.restarts.reset()
    this.spawnRun()
  }

  /** SIGTERM to the instance (every process in it), SIGKILL after stopGraceMs; resolves once it has exited. */
  async stop (): Promise<void> {
    this.noRestart = true
    this.startAfterStop = false
    this.restarts.cancel()
    if (this.launching !== undefined) {
      // The run being created is killed as soon as it exists (see spawnRun); its exit ends the stop.
      const done = this.grace.ended()
      if (this.st.state !== 'stopping') this.update({ state: 'stopping', reason: 'stopping: the run being started is ended as soon as it exists' })
      return await done
    }
    const run = this.run
    if (run === undefined) {
      if (this.st.state !== 'stopped' && this.st.state !== 'failed') {
        this.ilog.origin('stopped on request')
        this.update({ state: 'stopped', reason: 'stopped on request' })
      }
      await this.ilog.close()
      return
    }
    const done = this.grace.ended()
    if (this.st.state !== 'stopping') this.grace.begin(run.handle, this.o.stopGraceMs ?? serviceDefaults.stopGraceMs, (reason) => this.update({ state: 'stopping', reason }))
    return await done
  }

  /** SIGKILL to the instance now, no restart; synchronous, for a node going down. */
  kill (): void {
    this.noRestart = true
    this.startAfterStop = false
    this.restarts.cancel()
    if (this.run !== undefined) {
      this.ilog.origin(`killed: the node is shutting down (SIGKILL to ${this.run.handle.what})`)
      this.run.handle.kill()
    } else if (this.launching !== undefined) {
      // spawnRun kills the run as soon as it exists: noRestart is set.
    } else if (this.st.state !== 'stopped' && this.st.state !== 'failed') {
      this.update({ state: 'stopped', reason: 'the node is shutting down' })
    }
  }

  /** SIGSTOP to every process of the instance. Paused during backoff, the restart waits for resume(). */
  pause (): void { this.paused.pause() }

  /** SIGCONT to every process of the instance (or the restart that pause() held back). */
  resume (): void { this.paused.resume() }

  private spawnRun (): void {
    const launching = spawnRun(this.o, this.runtime, this.log, this.ilog, this.spawned)
    if (launching !== undefined) this.launching = launching
  }

  private readonly spawned: SpawnEvents = {
    creating: () => this.update({ state: 'starting', startedAt: this.clock.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: `starting a ${this.runtime.kind} run` }),
    failed: (e) => {
      this.launching = undefined
      this.update({ state: 'starting', startedAt: this.clock.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: undefined })
      this.decide(`could not start: ${errorMessage(e)}`, true, null, null)
    },
    created: (handle, streams, late) => {
      this.launching = undefined
      if (late && this.noRestart) {
        // stop() or kill() came while it was being created: it ends at once, and stays 'stopping' until it has.
        this.watch(handle, streams, true)
        this.grace.atOnce(handle)
        return
      }
      const paused = late && this.st.state === 'paused'
      this.watch(handle, streams)
      if (paused) this.paused.pauseCreated(handle)
    }
  }

  /** A run exists: it is the current one, fenced while it lives (process-run.ts follows it). */
  private watch (handle: RunHandle, streams: RunStreams, ending = false): void {
    const run = newRun(handle, this.clock.now())
    this.run = run
    this.o.fence?.track(this)
    followRun(run, streams, this.host, ending)
  }

  /** The run is over (everything in it ended, its output drained): decide. */
  private afterExit (run: Run, exit: RunExit): void {
    if (this.run !== run) return
    this.run = undefined
    const end = endOf(run, exit, this.o.memoryLimitMb, this.clock.now())
    this.decide(end.what, end.failed, exit.code, exit.signal, end.line, end.ranForMs)
  }

  /**
   * After an exit (or a failed spawn): stop for good, or schedule the restart. `what` is the
   * reason shown in the status (origin's own kill reason wins over the bare signal);
   * `exitLine` is what the instance log says happened.
   */
  private decide (what: string, failed: boolean, exitCode: number | null, signal: string | null, exitLine = what, ranForMs?: number): void {
    this.grace.cancel()
    const ended = { pid: undefined, exitCode, signal, rssMb: undefined }
    this.ilog.origin(exitLine)
    if (this.noRestart) {
      this.ilog.origin('stopped')
      this.log.info(`stopped (${what})`)
      this.update({ state: 'stopped', reason: `stopped on request; ${what}`, ...ended })
      this.finishStop()
      return
    }
    const next = this.restarts.next(what, failed, ranForMs)
    this.ilog.origin(next.originLine)
    if (!next.restart) {
      this.log[next.level](next.logLine)
      this.update({ state: next.state, reason: next.reason, ...ended })
      void this.ilog.close()
      return
    }
    this.log.warn(next.reason)
    if (this.st.state === 'paused') {
      // Exited while paused: the restart waits for resume(), as a pause means "do not run".
      this.paused.holdRestart(next.reason)
      this.update({ reason: `paused on request; ${what}`, ...ended })
      return
    }
    this.update({ state: 'backoff', reason: next.reason, ...ended })
    this.restarts.after(next.delayMs, () => this.respawn())
  }

  private respawn (): void {
    this.st.restarts++ // told with the spawn's status
    this.spawnRun()
  }

  private finishStop (): void {
    void this.ilog.close()
    this.grace.done()
    if (this.startAfterStop) {
      this.startAfterStop = false
      this.start()
    }
  }

  /** Applies a change; emits 'status' when anything but the RSS sample changed. */
  private update (patch: Partial<InstanceStatus>): void {
    const { next, changed } = patched(this.st, patch)
    this.st = next
    if (changed) this.emit('status', this.status())
  }
}
