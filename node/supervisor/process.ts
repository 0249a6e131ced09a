/**
 * One supervised instance: each run started by its runtime (node/runtime: by default its
 * command spawned contained, its own PID namespace where the node can, see contain.ts;
 * else its own process group; or a Docker container), its output and that of everything
 * it starts stamped into a rotating instance log, restarted by policy with exponential
 * backoff, stopped after a crash loop, health-checked, held to a memory limit over all its
 * processes, and never left behind: no process outlives its instance.
 *
 * This file is the lifecycle (start, stop, pause, one run from spawn to exit). What to do
 * after an exit, a health check or a memory sample is decided by pure functions in
 * policy.ts; the health loop is process-health.ts, memory sampling process-memory.ts, the
 * status and options types process-types.ts.
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
import { systemClock, type Clock, type Timer } from '../clock'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import type { Program, RunExit, RunHandle, Runtime } from '../runtime/contract'
import { NOT_STARTED, processRuntime } from '../runtime/process'
import type { HealthSpec } from '../desired/types'
import { RotatingLog, lineStamper, stampLine } from './logfile'
import { afterExit, fmtDelay, fmtWindow, freshRestarts, serviceDefaults, type HealthState, type HealthVerdict, type RestartMemory } from './policy'
import { checkHealth, healthAs } from './process-health'
import { startSampling } from './process-memory'
import { after, type InstanceState, type InstanceStatus, type ManagedProcessOptions, type Run } from './process-types'
import type { Usage } from './procfs'
import type { Fenced } from './watchdog'

export type { InstanceState, InstanceStatus, ManagedProcessOptions } from './process-types'
export { killAllGroups, waitReady } from './process-wait'

export class ManagedProcess extends EventEmitter<{ status: [InstanceStatus] }> implements Fenced {
  readonly id: string
  private readonly o: ManagedProcessOptions
  private readonly log: Logger
  private readonly file: RotatingLog
  private st: InstanceStatus = { state: 'stopped', restarts: 0 }
  private run: Run | undefined
  private backoffTimer: Timer | undefined
  /** On the host's clock: the grace a real process gets between SIGTERM and SIGKILL. */
  private graceTimer: NodeJS.Timeout | undefined
  private stopDeadline = 0
  /** What the restart policy remembers between runs (policy.ts). */
  private restarts: RestartMemory = freshRestarts()
  /** Set when origin kills the process for a reason of its own (memory); becomes the exit reason. */
  private killReason: string | undefined
  /** stop() or kill() was asked: the next exit is final. */
  private noRestart = false
  private startAfterStop = false
  private stopWaiters: Array<() => void> = []
  private prePause: { state: InstanceState, reason?: string } | undefined
  private writeFailing = false
  private readonly runtime: Runtime
  /** A run being started by an asynchronous runtime (a container being created). */
  private launching: Promise<void> | undefined
  /** The health check as run: a command check runs as the instance's user too. */
  private readonly health: HealthSpec | undefined
  private readonly clock: Clock

  constructor (opts: ManagedProcessOptions) {
    super()
    this.id = opts.id
    this.o = opts
    this.clock = opts.clock ?? systemClock
    this.log = opts.log.child(opts.id)
    this.file = new RotatingLog({ path: opts.logPath, maxBytes: opts.logMaxBytes, keep: opts.logKeep })
    const processes = opts.runtime === undefined ? processRuntime({ containment: opts.containment, recordDir: opts.recordDir }) : undefined
    this.runtime = opts.runtime ?? processes!
    // A command check of a container service runs on the node, as the node (see README "Containers").
    this.health = opts.image === undefined ? healthAs(opts.health, opts.user, (processes?.containment ?? opts.containment)?.setpriv) : opts.health
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
    this.restarts = freshRestarts()
    this.spawnRun()
  }

  /** SIGTERM to the instance (every process in it), SIGKILL after stopGraceMs; resolves once it has exited. */
  async stop (): Promise<void> {
    this.noRestart = true
    this.startAfterStop = false
    this.clearBackoff()
    if (this.launching !== undefined) {
      // The run being created is killed as soon as it exists (see launch); its exit ends the stop.
      const done = new Promise<void>((resolve) => this.stopWaiters.push(resolve))
      if (this.st.state !== 'stopping') this.update({ state: 'stopping', reason: 'stopping: the run being started is ended as soon as it exists' })
      return await done
    }
    const run = this.run
    if (run === undefined) {
      if (this.st.state !== 'stopped' && this.st.state !== 'failed') {
        this.origin('stopped on request')
        this.update({ state: 'stopped', reason: 'stopped on request' })
      }
      await this.file.close()
      return
    }
    const done = new Promise<void>((resolve) => this.stopWaiters.push(resolve))
    if (this.st.state !== 'stopping') {
      const grace = this.o.stopGraceMs ?? serviceDefaults.stopGraceMs
      // Real time: the runtime waits on the real process against this deadline.
      this.stopDeadline = Date.now() + grace
      const reason = `stopping: SIGTERM to ${run.handle.what}, SIGKILL after ${fmtDelay(grace)}`
      this.origin(reason)
      this.update({ state: 'stopping', reason })
      run.handle.terminate(this.stopDeadline) // with SIGCONT: a paused process must run to handle SIGTERM
      this.graceTimer = setTimeout(() => {
        this.origin(`still running after ${fmtDelay(grace)}: SIGKILL to ${run.handle.what}`)
        this.log.warn(`did not stop within ${fmtDelay(grace)}: SIGKILL`)
        run.handle.kill()
      }, grace)
    }
    return await done
  }

  /** SIGKILL to the instance now, no restart; synchronous, for a node going down. */
  kill (): void {
    this.noRestart = true
    this.startAfterStop = false
    this.clearBackoff()
    if (this.run !== undefined) {
      this.origin(`killed: the node is shutting down (SIGKILL to ${this.run.handle.what})`)
      this.run.handle.kill()
    } else if (this.launching !== undefined) {
      // launch kills the run as soon as it exists: noRestart is set.
    } else if (this.st.state !== 'stopped' && this.st.state !== 'failed') {
      this.update({ state: 'stopped', reason: 'the node is shutting down' })
    }
  }

  /** SIGSTOP to every process of the instance. Paused during backoff, the restart waits for resume(). */
  pause (): void {
    const s = this.st.state
    if (s === 'paused' || s === 'stopping' || s === 'stopped' || s === 'failed') return
    this.prePause = { state: s, reason: this.st.reason }
    if (this.run !== undefined) {
      this.run.handle.pause()
      this.origin(`paused (SIGSTOP to ${this.run.handle.what})`)
    } else if (this.launching !== undefined) {
      this.origin('paused while starting; the run is paused as soon as it exists')
    } else {
      this.clearBackoff()
      this.origin('paused during backoff; the restart waits for resume')
    }
    this.log.info('paused')
    this.update({ state: 'paused', reason: 'paused on request' })
  }

  /** SIGCONT to every process of the instance (or the restart that pause() held back). */
  resume (): void {
    if (this.st.state !== 'paused') return
    const prev = this.prePause ?? { state: 'ready' }
    this.prePause = undefined
    this.log.info('resumed')
    if (this.run === undefined && this.launching !== undefined) {
      // The run being created was not paused: it goes on as started.
      this.update({ state: 'starting', reason: `starting a ${this.runtime.kind} run` })
      return
    }
    if (this.run === undefined) {
      this.st.restarts++ // told with the spawn's status
      this.spawnRun()
      return
    }
    this.run.handle.resume()
    this.run.failures = 0
    this.origin(`resumed (SIGCONT to ${this.run.handle.what})`)
    this.update({ state: prev.state, reason: prev.reason })
  }

  // ---- one run: spawn, watch, exit ----

  private spawnRun (): void {
    this.killReason = undefined
    const { args } = this.o
    const program: Program = this.o.image === undefined
      ? { kind: 'command', command: this.o.command, cwd: this.o.cwd }
      : { kind: 'image', image: this.o.image.ref, service: this.o.image.service, workdir: this.o.image.workdir }
    const out = lineStamper('out', (line) => this.append(line))
    const err = lineStamper('err', (line) => this.append(line))
    let started: RunHandle | Promise<RunHandle>
    try {
      started = this.runtime.start({
        id: this.id,
        program,
        args,
        env: this.o.env,
        user: this.o.user,
        memoryLimitMb: this.o.memoryLimitMb,
        ...(this.o.cpu === undefined ? {} : { cpu: this.o.cpu }),
        log: this.log,
        output: (stream, chunk) => (stream === 'out' ? out : err)(chunk)
      })
    } catch (e) {
      this.couldNotStart(e)
      return
    }
    const ends = { out, err }
    if (!(started instanceof Promise)) { this.watch(started, ends); return }
    this.update({ state: 'starting', startedAt: this.clock.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: `starting a ${this.runtime.kind} run` })
    const launching = started.then((handle) => {
      this.launching = undefined
      if (this.noRestart) {
        // stop() or kill() came while it was being created: it ends at once, and stays 'stopping' until it has.
        this.stopDeadline = Date.now() // real, as in stop()
        this.watch(handle, ends, true)
        handle.terminate(this.stopDeadline)
        handle.kill()
        return
      }
      const paused = this.st.state === 'paused'
      this.watch(handle, ends)
      if (paused) {
        this.prePause = { state: this.st.state, reason: this.st.reason }
        handle.pause()
        this.origin(`paused (SIGSTOP to ${handle.what})`)
        this.update({ state: 'paused', reason: 'paused on request' })
      }
    }, (e) => {
      this.launching = undefined
      this.couldNotStart(e)
    })
    this.launching = launching
  }

  private couldNotStart (e: unknown): void {
    this.update({ state: 'starting', startedAt: this.clock.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: undefined })
    this.decide(`could not start: ${errorMessage(e)}`, true, null, null)
  }

  /** A run exists: follow it until it has exited. */
  private watch (handle: RunHandle, ends: { out: { end: () => void }, err: { end: () => void } }, ending = false): void {
    const run: Run = { handle, startedAt: this.clock.now(), exited: false, timers: new Set(), failures: 0, sampling: false }
    this.run = run
    this.o.fence?.track(this)
    void handle.gone.then(() => {
      run.exited = true
      run.goneAt = this.clock.now()
      for (const t of run.timers) t.cancel()
      run.timers.clear()
      // The runtime stopped signalling this run's pids when it saw it gone, whatever untrack sets off.
      this.o.fence?.untrack(this)
    })
    void handle.exit.then((exit) => {
      ends.out.end()
      ends.err.end()
      this.afterExit(run, exit)
    })
    if (handle.started === NOT_STARTED) {
      // Never started (the spawn failed on the next tick): the exit says why, like a throw.
      this.update({ state: 'starting', startedAt: this.clock.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: undefined })
      return
    }
    const container = /^container ([0-9a-f]+)/.exec(handle.started)?.[1]
    const what = this.o.image === undefined ? [this.o.command, ...this.o.args].join(' ') : [this.o.image.ref, ...this.o.args].join(' ')
    this.origin(`started ${handle.started}${this.o.user === undefined ? '' : ` as uid ${this.o.user.uid}`}: ${what}`)
    this.log.info(`started ${handle.started}`)
    if (ending) return
    const health = this.health
    this.update({
      state: health === undefined ? 'ready' : 'starting',
      reason: health === undefined ? undefined : 'waiting for the first health check to pass',
      pid: handle.pid,
      container,
      startedAt: run.startedAt,
      exitCode: undefined,
      signal: undefined,
      rssMb: undefined
    })
    const live = (r: Run): boolean => this.run === r
    if (health !== undefined) {
      const ctx = { cwd: this.o.cwd, env: this.o.env, user: this.o.user }
      after(run, this.clock, 0, () => { void checkHealth(run, health, ctx, { clock: this.clock, live, state: () => this.st.state, apply: (v, was, detail) => this.healthVerdict(v, was, detail) }) })
    }
    startSampling(run, { limitMb: this.o.memoryLimitMb, sampleIntervalMs: this.o.sampleIntervalMs }, {
      clock: this.clock,
      live,
      sampled: (rssMb) => { this.st.rssMb = rssMb }, // a sample, not a change of state: no 'status' event
      busy: () => ({ killing: this.killReason !== undefined, stopping: this.st.state === 'stopping' }),
      kill: (reason) => {
        this.killReason = reason
        this.origin(`${reason}: SIGKILL to ${run.handle.what}`)
        this.log.warn(`${reason}: killing it`)
        run.handle.kill()
      },
      log: this.log
    })
  }

  /** The run is over (everything in it ended, its output drained): decide. */
  private afterExit (run: Run, exit: RunExit): void {
    if (this.run !== run) return
    this.run = undefined
    const { code, signal } = exit
    const ended = exit.reason ?? (exit.oomKilled === true
      ? `killed: out of memory (limit ${this.o.memoryLimitMb ?? '?'} MiB)`
      : signal !== null ? `killed by ${signal}` : `exited with code ${code ?? '?'}`)
    const failed = this.killReason !== undefined || exit.oomKilled === true || exit.reason !== undefined || signal !== null || code !== 0
    this.decide(this.killReason ?? ended, failed, code, signal, ended, (run.goneAt ?? this.clock.now()) - run.startedAt)
  }

  /**
   * After an exit (or a failed spawn): stop for good, or schedule the restart. `what` is the
   * reason shown in the status (origin's own kill reason wins over the bare signal);
   * `exitLine` is what the instance log says happened.
   */
  private decide (what: string, failed: boolean, exitCode: number | null, signal: string | null, exitLine = what, ranForMs?: number): void {
    this.killReason = undefined
    clearTimeout(this.graceTimer)
    this.graceTimer = undefined
    const ended = { pid: undefined, exitCode, signal, rssMb: undefined }
    this.origin(exitLine)
    if (this.noRestart) {
      this.origin('stopped')
      this.log.info(`stopped (${what})`)
      this.update({ state: 'stopped', reason: `stopped on request; ${what}`, ...ended })
      this.finishStop()
      return
    }
    const policy = this.o.restart.policy
    const d = afterExit({
      ...this.o.restart,
      stableAfterMs: this.o.stableAfterMs,
      crashLoopRestarts: this.o.crashLoop?.restarts,
      crashLoopWindowMs: this.o.crashLoop?.windowMs
    }, this.restarts, { failed, ranForMs }, this.clock.now())
    this.restarts = d.memory
    if (d.kind === 'final') {
      this.origin(`${d.state}: restart policy ${policy}, not restarting`)
      this.log[failed ? 'error' : 'info'](`${what}; restart policy ${policy}, not restarting`)
      this.update({ state: d.state, reason: what, ...ended })
      void this.file.close()
      return
    }
    if (d.kind === 'crash-loop') {
      const reason = `crash loop: ${d.restarts} restarts within ${fmtWindow(d.windowMs)}, not restarting (last: ${what})`
      this.origin(reason)
      this.log.error(reason)
      this.update({ state: 'failed', reason, ...ended })
      void this.file.close()
      return
    }
    const delay = d.delayMs
    const reason = `${what}; restarting in ${fmtDelay(delay)} (attempt ${d.attempt})`
    this.origin(`restarting in ${fmtDelay(delay)} (attempt ${d.attempt})`)
    this.log.warn(reason)
    if (this.st.state === 'paused') {
      // Exited while paused: the restart waits for resume(), as a pause means "do not run".
      this.prePause = { state: 'backoff', reason }
      this.update({ reason: `paused on request; ${what}`, ...ended })
      return
    }
    this.update({ state: 'backoff', reason, ...ended })
    this.backoffTimer = this.clock.after(delay, () => {
      this.backoffTimer = undefined
      this.st.restarts++ // told with the spawn's status
      this.spawnRun()
    })
  }

  private finishStop (): void {
    const waiters = this.stopWaiters
    this.stopWaiters = []
    void this.file.close()
    for (const w of waiters) w()
    if (this.startAfterStop) {
      this.startAfterStop = false
      this.start()
    }
  }

  private clearBackoff (): void {
    this.backoffTimer?.cancel()
    this.backoffTimer = undefined
  }

  // ---- health: decided in policy.ts, applied here ----

  private healthVerdict (v: HealthVerdict, was: HealthState, detail: string): void {
    if (v.state === 'ready') {
      this.origin(was === 'starting' ? `ready (${detail})` : `healthy again (${detail})`)
      this.log.info(was === 'starting' ? 'ready' : 'healthy again')
    } else if (v.state === 'unhealthy') {
      this.origin(`unhealthy: ${v.reason ?? detail}`)
      this.log.warn(`unhealthy: ${v.reason ?? detail}`)
    }
    if (v.state !== undefined || v.setsReason) this.update({ ...(v.state === undefined ? {} : { state: v.state }), ...(v.setsReason ? { reason: v.reason } : {}) })
  }

  // ---- instance log and status ----

  private origin (text: string): void {
    this.append(stampLine('origin', text))
  }

  private append (line: string): void {
    try {
      this.file.write(line)
      this.writeFailing = false
    } catch (err) {
      if (!this.writeFailing) this.log.error(`cannot write the instance log ${this.o.logPath}: ${errorMessage(err)}`)
      this.writeFailing = true
    }
  }

  /** Applies a change; emits 'status' when anything but the RSS sample changed. */
  private update (patch: Partial<InstanceStatus>): void {
    const next: InstanceStatus = { ...this.st, ...patch }
    for (const k of Object.keys(next) as Array<keyof InstanceStatus>) if (next[k] === undefined) delete next[k]
    const keys = new Set([...Object.keys(this.st), ...Object.keys(next)] as Array<keyof InstanceStatus>)
    keys.delete('rssMb')
    const changed = [...keys].some((k) => this.st[k] !== next[k])
    this.st = next
    if (changed) this.emit('status', this.status())
  }
}
