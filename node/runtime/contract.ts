/**
 * runtime: how one run of an instance is started and ended. The supervisor's lifecycle
 * policy (restart, backoff, crash loop, health, memory limit, instance log, pause) lives in
 * ManagedProcess (node/supervisor/process.ts) and is the same for every runtime; a runtime
 * only starts ONE run and hands back a RunHandle to signal, measure, fence and await it.
 *
 * Two runtimes are built in (builtin.ts): host processes contained by the node (process.ts,
 * wrapping node/supervisor/contain.ts) and Docker containers through the Engine API
 * (docker.ts, engine.ts). The supervisor takes a RuntimeSet as a component, so the
 * assembly (or a plugin) can replace either.
 *
 * @example
 *   const rt = processRuntime({ containment, recordDir })
 *   const h = await rt.start({ id: 'web-1', program: { command: 'node', cwd: '/srv/web' }, args: ['server.js'],
 *     env: { PORT: '8080' }, log, output: (stream, chunk) => file.write(...) })
 *   h.terminate(Date.now() + 10_000)   // SIGTERM to everything in the run
 *   const exit = await h.exit           // { code, signal, oomKilled? }
 */
import type { Clock } from '../clock'
import type { Logger } from '../log'
import type { Containment, InstanceUser } from '../supervisor/contain'
import type { ImageRunSpec } from '../desired/types'

/** What a run executes: a command on the host, or a container from an image. */
export type Program =
  | { kind: 'command', command: string, cwd: string }
  | {
    kind: 'image'
    /** The image reference containers are created from (present on the node). */
    image: string
    /** The service the instance belongs to (a container label). */
    service: string
    /** The working directory inside the container. @default the image's */
    workdir?: string
  }

export interface RunRequest {
  /** The instance id; names its container, labels and records. */
  id: string
  program: Program
  args: string[]
  /** The instance's environment (the process runtime adds the node's PATH, HOME and LANG; a container gets its image's). */
  env: Record<string, string>
  /** Run as this user (users.ts). @default the node's user (processes), the image's (containers) */
  user?: InstanceUser
  /** A limit the runtime enforces itself where it can (a container's cgroup); others leave it to the supervisor's sampling. */
  memoryLimitMb?: number
  /** CPU weight and cap (containers: the engine's CpuShares and NanoCpus). @default none */
  cpu?: { shares?: number, cpus?: number }
  /** The instance's scope of the node log. */
  log: Logger
  /** Output of the run, as it comes: the supervisor stamps it into the instance log. */
  output: (stream: 'out' | 'err', chunk: Buffer) => void
}

/** How a run ended. */
export interface RunExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** The kernel killed it at its memory limit (a container's cgroup). */
  oomKilled?: boolean
  /** Why it ended, in words, when the runtime knows better than the code (`could not start: ...`). */
  reason?: string
}

/** The live processes of a run (host pids), their summed RSS and CPU time in clock ticks (USER_HZ). */
export interface RunUsage {
  pids: number[]
  rssKb: number
  cpuTicks: number
}

export interface RunHandle {
  /** What a signal reaches, in words for the logs: `the instance`, `the group`, `container 3f2a1b0c9d8e`. */
  readonly what: string
  /** How the run started, in words for the instance log: `pid 1234`, `container 3f2a1b0c9d8e (pid 1234)`. */
  readonly started: string
  /** A host pid naming the run, for the status; undefined when the node cannot see one. */
  readonly pid?: number
  /** Words for "all of the run's memory" in a memory-limit kill reason: `the whole instance`. */
  readonly memoryScope: string
  /** The runtime holds the memory limit itself (and reports an OOM kill); the supervisor only measures. */
  readonly enforcesMemory: boolean
  /** Resolves as soon as the run's main process is gone (health checks and sampling stop). */
  readonly gone: Promise<void>
  /** Resolves once the run is over: everything in it ended, its output drained, its traces removed. Never rejects. */
  readonly exit: Promise<RunExit>
  /**
   * SIGTERM to everything in the run (and SIGCONT, so a paused process handles it);
   * `deadline` is when the supervisor will kill(), in real time (Date.now), whatever the
   * node's clock: the run's processes keep the host's.
   */
  terminate (deadline: number): void
  /** SIGKILL to everything in the run now; synchronous where the runtime can be (usable on the node's 'exit'). */
  kill (): void
  pause (): void
  resume (): void
  usage (): Promise<RunUsage>
  /**
   * What the node's watchdog (supervisor/watchdog.ts) SIGKILLs to end the run without the
   * node: `p:PID:START` (one process) or `g:PID:START` (a process group).
   */
  fenceTargets (): string[]
}

export interface Runtime {
  /** `process` or `docker`: a service's runtime, as said in logs and reasons. */
  readonly kind: string
  /**
   * Starts one run. Throws (or rejects) when the run cannot start at all; a run that starts
   * and fails later reports it through `exit`. A synchronous handle keeps a process start
   * free of an extra tick.
   */
  start (req: RunRequest): RunHandle | Promise<RunHandle>
}

/**
 * A runtime for images: the engine is reached on first need (a node that runs only
 * processes never pays for it), images are made ready per service and code version, and
 * what a previous run of the node left is ended at start. ContainerEngine (engine.ts) is
 * the built-in, on Docker's Engine API.
 */
export interface ImageRuntime {
  /** The runtime to start runs with, or why there is none (retried after a while). */
  connect (): Promise<{ runtime: Runtime } | { reason: string }>
  /** The image reference `service`'s containers are created from, ready on the engine (pulled, loaded or built). */
  image (service: string, spec: string | ImageRunSpec, codeDir: string, codeVersion: string): Promise<string>
  /** When a failed connection or image may be tried again (ms since the epoch, on the runtime's clock). */
  nextRetry (): number | undefined
  /** Before the first run starts: the node's next start looks for leftovers. */
  mark (): Promise<void>
  /** At the node's start: ends what a previous run of it left; what it ended, in words. */
  endLeftovers (): Promise<string[]>
  /** At the node's stop, once its instances have stopped. */
  stop (): Promise<void>
}

/**
 * The runtimes a supervisor starts instances with, by name, each a factory given what only
 * the node knows: `process` runs a service's `run.command` on the host, `container` its
 * `run.image`.
 */
export interface RuntimeSet {
  process: (init: { containment: Containment, recordDir: string }) => Runtime
  /**
   * `clock`: when a failed connection or image is tried again (`nextRetry` is on it, as the
   * supervisor's retries are). What a run does stays on real time: its processes and the
   * engine keep the host's clock. @default systemClock
   */
  container: (init: { socket: string, dataDir: string, nodeId: string, log: Logger, clock?: Clock }) => ImageRuntime
}
