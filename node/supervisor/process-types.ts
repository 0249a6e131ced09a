/** The types of a supervised instance (process.ts): its status and the options it is made with. */
import type { Clock, Timer } from '../clock'
import type { Logger } from '../log'
import type { RunHandle, Runtime } from '../runtime/contract'
import type { HealthSpec } from '../desired/types'
import type { Containment, InstanceUser } from './contain'
import type { Fence } from './watchdog'

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
    /** First delay before a restart; doubles per consecutive restart. @default serviceDefaults.backoffMs (policy.ts) */
    backoffMs?: number
    /** Upper bound of the doubling delay. @default serviceDefaults.maxBackoffMs (policy.ts) */
    maxBackoffMs?: number
  }
  /** More than `restarts` restarts within `windowMs` means the process cannot run: failed. */
  crashLoop?: {
    /** @default serviceDefaults.crashLoopRestarts (policy.ts) */
    restarts?: number
    /** @default serviceDefaults.crashLoopWindowMs (policy.ts) */
    windowMs?: number
  }
  /** Without one the process is ready as soon as it is spawned. */
  health?: HealthSpec
  /** The instance's RSS (all its processes) above this gets it killed and restarted by policy. @default none */
  memoryLimitMb?: number
  /** CPU weight and cap, for runtimes that have them (containers). @default none */
  cpu?: { shares?: number, cpus?: number }
  /** Time between SIGTERM and SIGKILL on stop. Longer lets a process finish its work. @default serviceDefaults.stopGraceMs (policy.ts) */
  stopGraceMs?: number
  /** How often the instance's RSS is read. Shorter catches a fast leak sooner, costs /proc reads. @default serviceDefaults.sampleIntervalMs (policy.ts) */
  sampleIntervalMs?: number
  /** A process up this long resets the backoff to its first delay. @default serviceDefaults.stableAfterMs (policy.ts) */
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
  /**
   * The time restarts, health checks and memory samples are scheduled by, and the status
   * and restart policy read. The stop grace (SIGTERM, then SIGKILL) stays on the host's
   * clock: it waits on a real process. @default systemClock
   */
  clock?: Clock
}

/** One run (a spawned process, a container) and what hangs off it; internal to process*.ts. */
export interface Run {
  handle: RunHandle
  startedAt: number
  /** When its main process was seen gone: how long it ran, for the restart policy. */
  goneAt?: number
  exited: boolean
  timers: Set<Timer>
  /** Consecutive failed health checks that counted. */
  failures: number
  sampling: boolean
  /** Set when origin kills the run for a reason of its own (memory); becomes the exit reason. */
  killReason?: string
}

/** A timer that belongs to the run: cancelled when its main process is gone. */
export function after (run: Run, clock: Clock, ms: number, fn: () => void): void {
  const t = clock.after(ms, () => { run.timers.delete(t); fn() })
  run.timers.add(t)
}

/** `st` with `patch` applied (undefined fields dropped), and whether anything but the RSS sample changed. */
export function patched (st: InstanceStatus, patch: Partial<InstanceStatus>): { next: InstanceStatus, changed: boolean } {
  const next: InstanceStatus = { ...st, ...patch }
  for (const k of Object.keys(next) as Array<keyof InstanceStatus>) if (next[k] === undefined) delete next[k]
  const keys = new Set([...Object.keys(st), ...Object.keys(next)] as Array<keyof InstanceStatus>)
  keys.delete('rssMb')
  return { next, changed: [...keys].some((k) => st[k] !== next[k]) }
}
