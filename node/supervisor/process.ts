/**
 * One supervised instance: each run started by its runtime (node/runtime: by default its
 * command spawned contained, its own PID namespace where the node can, see contain.ts;
 * else its own process group; or a Docker container), its output and that of everything
 * it starts stamped into a rotating instance log, restarted by policy with exponential
 * backoff, stopped after a crash loop, health-checked, held to a memory limit over all its
 * processes, and never left behind: no process outlives its instance.
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
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import type { Program, RunExit, RunHandle, Runtime } from '../runtime/contract'
import { childEnv, DRAIN_MS, NOT_STARTED, processRuntime } from '../runtime/process'
import type { HealthSpec } from '../desired/types'
import { dropFlags, type Containment, type InstanceUser } from './contain'
import { runHealthCheck } from './health'
import { RotatingLog, lineStamper, stampLine } from './logfile'
import type { Usage } from './procfs'
import type { Fence, Fenced } from './watchdog'

export type InstanceState = 'starting' | 'ready' | 'unhealthy' | 'backoff' | 'paused' | 'stopping' | 'stopped' | 'failed'

export interface InstanceStatus {
  state: InstanceState
  /** Why the instance is in this state, in words (`exited with code 3; restarting in 0.5 s (attempt 1)`). */
  reason?: string
  /** The pid of the spawned process (setpriv, then unshare, in PID namespace mode; a container's init), while it runs. */
  pid?: number
  /** The container of the run, for a container service. */
  container?: string
  /** Restarts done so far (the first start does not count). */
  restarts: number
  /** When the current (or last) process was spawned, ms since the epoch. */
  startedAt?: number
  /** How the last process ended. */
  exitCode?: number | null
  signal?: string | null
  /** RSS of the whole instance (its namespace or process group) at the last sample. */
  rssMb?: number
}

export interface ManagedProcessOptions {
  /** The instance id; names the node-log scope. */
  id: string
  /** The executable, looked up on the PATH of `env` (or the node's PATH). Ignored with `image`. */
  command: string
  /** Run from this image instead (a runtime that runs containers, see node/runtime/docker.ts). @default a command */
  image?: { ref: string, service: string, workdir?: string }
  args: string[]
  /**
   * Merged over a minimal environment inherited from the node: PATH, HOME and LANG only.
   * The node's own variables (its config, anything secret) do not leak into workloads;
   * a process needs what it is given by the spec and little else.
   */
  env: Record<string, string>
  cwd: string
  /** The instance log (rotating). */
  logPath: string
  /** The node log; lifecycle events go there too, under a child scope named by `id`. */
  log: Logger
  restart: {
    policy: 'always' | 'on-failure' | 'never'
    /** First delay before a restart; doubles per consecutive restart. @default 500 */
    backoffMs?: number
    /** Upper bound of the doubling delay. @default 30000 */
    maxBackoffMs?: number
  }
  /** More than `restarts` restarts within `windowMs` means the process cannot run: failed. */
  crashLoop?: {
    /** @default 5 */
    restarts?: number
    /** @default 60000 */
    windowMs?: number
  }
  /** Without one the process is ready as soon as it is spawned. */
  health?: HealthSpec
  /** The instance's RSS (all its processes) above this gets it killed and restarted by policy. @default none */
  memoryLimitMb?: number
  /** CPU weight and cap, for runtimes that have them (containers). @default none */
  cpu?: { shares?: number, cpus?: number }
  /** Time between SIGTERM and SIGKILL on stop. Longer lets a process finish its work. @default 10000 */
  stopGraceMs?: number
  /** How often the instance's RSS is read. Shorter catches a fast leak sooner, costs /proc reads. @default 1000 */
  sampleIntervalMs?: number
  /** A process up this long resets the backoff to its first delay. @default 10000 */
  stableAfterMs?: number
  /** Instance log rotation. @default 10 MiB, 5 parts */
  logMaxBytes?: number
  logKeep?: number
  /**
   * How instances are contained: probeContainment() once per node. A PID namespace means
   * nothing an instance starts outlives it; a process group (the default) lets what leaves
   * the group escape. @default groupContainment()
   */
  containment?: Containment
  /**
   * Where a running instance keeps a record of its processes (DATA/run), so that a node
   * restarting after a crash ends them with endLeftovers() before it starts anything.
   * @default none: nothing is recorded
   */
  recordDir?: string
  /**
   * Run the instance, and its command health check, as this user (users.ts; needs a
   * containment with `users`). HOME and TMPDIR become its own directories.
   * @default the node's user
   */
  user?: InstanceUser
  /**
   * The node's watchdog (watchdog.ts): while the process runs, the watchdog can kill it
   * should this node stop renewing its lease (paused, frozen). For singletons.
   * @default none
   */
  fence?: Fence
  /**
   * What starts each run. @default processRuntime({ containment, recordDir }): a host
   * process; a container runtime needs `image`.
   */
  runtime?: Runtime
}

/** Every default in one place. The health defaults apply where the HealthSpec leaves a field out. */
export const processDefaults = {
  backoffMs: 500,
  maxBackoffMs: 30_000,
  crashLoopRestarts: 5,
  crashLoopWindowMs: 60_000,
  stopGraceMs: 10_000,
  sampleIntervalMs: 1000,
  stableAfterMs: 10_000,
  healthIntervalMs: 2000,
  healthTimeoutMs: 1000,
  healthStartPeriodMs: 0,
  /** Consecutive failed checks that turn a ready process unhealthy. */
  unhealthyAfter: 3,
  /** After the spawned process exits, how long to wait for its pipes to close (a process that left the group may hold them). */
  drainMs: DRAIN_MS
} as const

/** One run (a spawned process, a container) and what hangs off it. */
interface Run {
  handle: RunHandle
  startedAt: number
  exited: boolean
  timers: Set<NodeJS.Timeout>
  /** Consecutive failed health checks that counted. */
  failures: number
  sampling: boolean
}

export class ManagedProcess extends EventEmitter<{ status: [InstanceStatus] }> implements Fenced {
  readonly id: string
  private readonly o: ManagedProcessOptions
  private readonly log: Logger
  private readonly file: RotatingLog
  private st: InstanceStatus = { state: 'stopped', restarts: 0 }
  private run: Run | undefined
  private backoffTimer: NodeJS.Timeout | undefined
  private graceTimer: NodeJS.Timeout | undefined
  private stopDeadline = 0
  /** Consecutive restarts since the last stable run: the backoff exponent. */
  private attempt = 0
  private restartTimes: number[] = []
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

  constructor (opts: ManagedProcessOptions) {
    super()
    this.id = opts.id
    this.o = opts
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
    this.attempt = 0
    this.restartTimes = []
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
      const grace = this.o.stopGraceMs ?? processDefaults.stopGraceMs
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
    this.update({ state: 'starting', startedAt: Date.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: `starting a ${this.runtime.kind} run` })
    const launching = started.then((handle) => {
      this.launching = undefined
      if (this.noRestart) {
        // stop() or kill() came while it was being created: it ends at once, and stays 'stopping' until it has.
        this.stopDeadline = Date.now()
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
    this.update({ state: 'starting', startedAt: Date.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: undefined })
    this.decide(`could not start: ${errorMessage(e)}`, true, null, null)
  }

  /** A run exists: follow it until it has exited. */
  private watch (handle: RunHandle, ends: { out: { end: () => void }, err: { end: () => void } }, ending = false): void {
    const run: Run = { handle, startedAt: Date.now(), exited: false, timers: new Set(), failures: 0, sampling: false }
    this.run = run
    this.o.fence?.track(this)
    void handle.gone.then(() => {
      run.exited = true
      for (const t of run.timers) clearTimeout(t)
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
      this.update({ state: 'starting', startedAt: Date.now(), pid: undefined, container: undefined, exitCode: undefined, signal: undefined, reason: undefined })
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
    if (health !== undefined) this.after(run, 0, () => { void this.checkHealth(run) })
    this.after(run, this.o.stableAfterMs ?? processDefaults.stableAfterMs, () => { this.attempt = 0 })
    // Without a limit the sample only feeds the status, so it can be rarer: 50 idle instances
    // should cost the node next to nothing.
    const base = this.o.sampleIntervalMs ?? processDefaults.sampleIntervalMs
    const every = this.o.memoryLimitMb === undefined ? base * 10 : base
    // Samples fall on multiples of the interval on the clock, so every instance of the node
    // samples at the same moment and one scan of /proc serves them all.
    this.after(run, every - (Date.now() % every), () => {
      void this.sample(run)
      const sampler = setInterval(() => { void this.sample(run) }, every)
      run.timers.add(sampler)
    })
  }

  private after (run: Run, ms: number, fn: () => void): void {
    const t = setTimeout(() => { run.timers.delete(t); fn() }, ms)
    run.timers.add(t)
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
    this.decide(this.killReason ?? ended, failed, code, signal, ended)
  }

  /**
   * After an exit (or a failed spawn): stop for good, or schedule the restart. `what` is the
   * reason shown in the status (origin's own kill reason wins over the bare signal);
   * `exitLine` is what the instance log says happened.
   */
  private decide (what: string, failed: boolean, exitCode: number | null, signal: string | null, exitLine = what): void {
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
    if (!(policy === 'always' || (policy === 'on-failure' && failed))) {
      const state = failed ? 'failed' : 'stopped'
      this.origin(`${state}: restart policy ${policy}, not restarting`)
      this.log[failed ? 'error' : 'info'](`${what}; restart policy ${policy}, not restarting`)
      this.update({ state, reason: what, ...ended })
      void this.file.close()
      return
    }
    const now = Date.now()
    const maxRestarts = this.o.crashLoop?.restarts ?? processDefaults.crashLoopRestarts
    const windowMs = this.o.crashLoop?.windowMs ?? processDefaults.crashLoopWindowMs
    this.restartTimes = this.restartTimes.filter((t) => now - t < windowMs)
    if (this.restartTimes.length >= maxRestarts) {
      const reason = `crash loop: ${maxRestarts} restarts within ${fmtWindow(windowMs)}, not restarting (last: ${what})`
      this.origin(reason)
      this.log.error(reason)
      this.update({ state: 'failed', reason, ...ended })
      void this.file.close()
      return
    }
    this.restartTimes.push(now)
    this.attempt++
    const base = this.o.restart.backoffMs ?? processDefaults.backoffMs
    const max = this.o.restart.maxBackoffMs ?? processDefaults.maxBackoffMs
    const delay = Math.min(base * 2 ** (this.attempt - 1), max)
    const reason = `${what}; restarting in ${fmtDelay(delay)} (attempt ${this.attempt})`
    this.origin(`restarting in ${fmtDelay(delay)} (attempt ${this.attempt})`)
    this.log.warn(reason)
    if (this.st.state === 'paused') {
      // Exited while paused: the restart waits for resume(), as a pause means "do not run".
      this.prePause = { state: 'backoff', reason }
      this.update({ reason: `paused on request; ${what}`, ...ended })
      return
    }
    this.update({ state: 'backoff', reason, ...ended })
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined
      this.st.restarts++ // told with the spawn's status
      this.spawnRun()
    }, delay)
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
    clearTimeout(this.backoffTimer)
    this.backoffTimer = undefined
  }

  // ---- health ----

  private async checkHealth (run: Run): Promise<void> {
    const h = this.health
    if (h === undefined || run.exited || this.run !== run) return
    const interval = h.intervalMs ?? processDefaults.healthIntervalMs
    const state = this.st.state
    if (state === 'paused' || state === 'stopping') {
      this.after(run, interval, () => { void this.checkHealth(run) })
      return
    }
    const result = await runHealthCheck(h, h.timeoutMs ?? processDefaults.healthTimeoutMs, this.o.cwd, childEnv(this.o.env, this.o.user))
    if (run.exited || this.run !== run) return
    this.after(run, interval, () => { void this.checkHealth(run) })
    const now = this.st.state
    if (now === 'paused' || now === 'stopping') return // the answer predates the pause
    if (result.ok) {
      run.failures = 0
      if (now === 'starting' || now === 'unhealthy') {
        this.origin(now === 'starting' ? `ready (${result.detail})` : `healthy again (${result.detail})`)
        this.log.info(now === 'starting' ? 'ready' : 'healthy again')
        this.update({ state: 'ready', reason: undefined })
      }
      return
    }
    const reason = `health check failing: ${result.detail}`
    if (now === 'starting') {
      this.update({ reason })
      return
    }
    if (Date.now() - run.startedAt < (h.startPeriodMs ?? processDefaults.healthStartPeriodMs)) return
    run.failures++
    if (now === 'unhealthy') {
      this.update({ reason })
    } else if (now === 'ready' && run.failures >= processDefaults.unhealthyAfter) {
      this.origin(`unhealthy: ${reason}`)
      this.log.warn(`unhealthy: ${reason}`)
      this.update({ state: 'unhealthy', reason })
    }
  }

  // ---- memory ----

  private async sample (run: Run): Promise<void> {
    if (run.sampling || run.exited) return
    run.sampling = true
    try {
      const { rssKb, pids } = await run.handle.usage()
      if (run.exited || this.run !== run) return
      const rssMb = Math.round(rssKb / 1024)
      this.st.rssMb = rssMb // a sample, not a change of state: no 'status' event
      const limit = this.o.memoryLimitMb
      // A runtime that holds the limit itself (a container's cgroup) kills and reports on its own.
      if (limit === undefined || run.handle.enforcesMemory || rssKb <= limit * 1024 || this.killReason !== undefined || this.st.state === 'stopping') return
      const whole = run.handle.memoryScope
      // Rounded up: just over the limit must not read as at it ("rss 250 MB" over 250 MB).
      const reason = `exceeded memory limit ${limit} MB: rss ${Math.ceil(rssKb / 1024)} MB (${whole}, ${pids.length} process${pids.length === 1 ? '' : 'es'})`
      this.killReason = reason
      this.origin(`${reason}: SIGKILL to ${run.handle.what}`)
      this.log.warn(`${reason}: killing it`)
      run.handle.kill()
    } catch (err) {
      this.log.debug(`could not sample memory of ${run.handle.started}: ${errorMessage(err)}`)
    } finally {
      run.sampling = false
    }
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

/** SIGKILL every instance now (its namespace or group), no restarts: for a node shutting down (synchronous, so usable on 'exit'). */
export function killAllGroups (processes: Iterable<ManagedProcess>): void {
  for (const p of processes) p.kill()
}

/** Resolves once `p` is ready; rejects (E_NOT_READY, with the status reason) if it stops, fails, or time runs out. */
export async function waitReady (p: ManagedProcess, timeoutMs: number): Promise<InstanceStatus> {
  return await new Promise((resolve, reject) => {
    const notReady = (s: InstanceStatus, why: string): OriginError =>
      new OriginError('E_NOT_READY', `${p.id} ${why}: ${s.state}${s.reason !== undefined ? ` (${s.reason})` : ''}`, { id: p.id, state: s.state, reason: s.reason }, 'waitReady')
    const onStatus = (s: InstanceStatus): boolean => {
      if (s.state === 'ready') {
        done()
        resolve(s)
        return true
      }
      if (s.state === 'failed' || s.state === 'stopped') {
        done()
        reject(notReady(s, 'will not become ready'))
        return true
      }
      return false
    }
    const timer = setTimeout(() => { done(); reject(notReady(p.status(), `not ready after ${timeoutMs} ms`)) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); p.off('status', onStatus) }
    if (onStatus(p.status())) return
    p.on('status', onStatus)
  })
}

// ---- helpers: environment, formatting ----

/** A command health check runs as the instance's user: it is the service's code, and its state dir is the service's to write. */
function healthAs (h: HealthSpec | undefined, user: InstanceUser | undefined, setpriv: string | undefined): HealthSpec | undefined {
  if (h?.command === undefined || user === undefined) return h
  if (setpriv === undefined) throw new Error('cannot run a health check as the instance\'s user without setpriv')
  return { ...h, command: { command: setpriv, args: [...dropFlags(user), '--', h.command.command, ...(h.command.args ?? [])] } }
}

function fmtDelay (ms: number): string {
  return ms < 100 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`
}

function fmtWindow (ms: number): string {
  const s = ms / 1000
  return Number.isInteger(s) ? `${s} s` : `${s.toFixed(1)} s`
}
