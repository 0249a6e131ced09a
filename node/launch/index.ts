/**
 * launch: start node programs as child processes on this machine. The demo uses it, and
 * so do the multi-node tests and benchmarks: real processes, real TLS, on loopback.
 *
 * @example
 *   const n = launchNode(['--image', dir], { logFile: 'n1.log' })
 *   await n.stop()          // SIGTERM, then SIGKILL after the grace period
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { PARENT_VARIABLE } from './self'

/** The compiled CLI entry point. */
export const cliPath = join(__dirname, '..', 'cli', 'main.js')

export interface LaunchOptions {
  /** Where the process's stdout and stderr go. @default discarded */
  logFile?: string
  env?: NodeJS.ProcessEnv
  /**
   * An `origin-node` executable (made by `origin build`) to run instead of this checkout's
   * CLI; `args` are then passed to it as they are (it takes its settings from `env`).
   */
  executable?: string
  /** Working directory of the process. @default this process's */
  cwd?: string
  /** Start from this process's environment (`env` is added to it); false: `env` alone. @default true */
  inheritEnv?: boolean
  /** The node exits once this process is gone (a killed test run leaves no nodes behind). @default true */
  exitWithParent?: boolean
}

export interface NodeProcess {
  readonly child: ChildProcess
  readonly pid: number
  /** Resolves with the exit code (or signal name) once the process is gone. */
  readonly exited: Promise<number | string>
  readonly running: boolean
  signal (sig: NodeJS.Signals): void
  /** SIGTERM (graceful leave), then SIGKILL after `graceMs`. */
  stop (graceMs?: number): Promise<number | string>
}

/**
 * V8 flags for a node process that NODE_OPTIONS also takes. A young generation of 1 MiB
 * semi-spaces instead of V8's 16: an idle node keeps ~10 MiB less (its private memory 39 ->
 * 29 MiB, measured with bench/cluster.ts), and RPC throughput and CPU per call did not
 * change measurably; a node's allocations are small and short-lived, so scavenges stay cheap.
 */
const OPTIONS_FLAGS = ['--max-semi-space-size=1']

/**
 * The V8 flags launchNode gives a node on its command line: OPTIONS_FLAGS, the same an
 * `origin-node` executable reads from NODE_OPTIONS. Not `--no-concurrent-recompilation`
 * (TurboFan on the node's own thread), which saved ~2 MiB of idle RSS but stalls the event
 * loop for each function it optimizes: on a machine short of CPU those stalls are missed
 * probes and watchdog renewals, i.e. false suspicions and fenced singletons.
 */
export const NODE_FLAGS = [...OPTIONS_FLAGS]

/**
 * The flags of NODE_FLAGS that NODE_OPTIONS takes: how an `origin-node` executable gets them,
 * since a single executable reads no node flags from its command line (the forms `origin
 * build` writes set this in the node's environment).
 */
export const NODE_OPTIONS = OPTIONS_FLAGS.join(' ')

/**
 * What a node process has in its environment besides NODE_OPTIONS: at most two malloc
 * arenas. glibc gives threads that allocate arenas of their own (up to 8 per core), and the
 * node's libuv and V8 worker threads then keep freed memory in them: idle nodes of a 3-node
 * cluster measured 61.9 MiB RSS at 90 s without it, still growing, and 59.0 with it, level.
 * The node's work is on its main thread, so two arenas cost it no contention to speak of.
 * launchNode sets it, as do the forms `origin build` writes.
 */
export const NODE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' }

/**
 * `env` with NODE_FLAGS taken out of NODE_OPTIONS (other options kept; the variable gone
 * if nothing is left), and NODE_ENV's variables where they hold its values: for programs a
 * node runs that are not node processes of its own, such as a code repo's build command,
 * whose `npm` or `tsc` must not inherit the node's small young generation or its arenas.
 */
export function withoutNodeFlags (env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env }
  for (const [k, v] of Object.entries(NODE_ENV)) if (out[k] === v) delete out[k]
  if (out.NODE_OPTIONS === undefined) return out
  const options = out.NODE_OPTIONS.split(/\s+/).filter((o) => o !== '' && !NODE_FLAGS.includes(o)).join(' ')
  if (options === '') delete out.NODE_OPTIONS
  else out.NODE_OPTIONS = options
  return out
}

export function launchNode (args: string[], o: LaunchOptions = {}): NodeProcess {
  const fd = o.logFile === undefined ? 'ignore' : openSync(o.logFile, 'a')
  const child = spawn(o.executable ?? process.execPath, o.executable === undefined ? [...NODE_FLAGS, cliPath, 'node', ...args] : args, {
    stdio: ['ignore', fd, fd],
    cwd: o.cwd,
    env: { ...NODE_ENV, ...(o.inheritEnv === false ? {} : process.env), ...(o.exitWithParent === false ? {} : { [PARENT_VARIABLE]: String(process.pid) }), ...o.env }
  })
  if (typeof fd === 'number') closeSync(fd)
  let running = true
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, sig) => { running = false; resolve(code ?? sig ?? 'unknown') })
    child.once('error', () => { running = false; resolve('spawn failed') })
  })
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    get running () { return running },
    signal (sig) { if (running) child.kill(sig) },
    async stop (graceMs = 5000) {
      if (!running) return await exited
      child.kill('SIGCONT') // a paused process cannot handle SIGTERM
      child.kill('SIGTERM')
      // Real time: the grace is the OS process's, which runs on the host's clock.
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      const code = await exited
      clearTimeout(timer)
      return code
    }
  }
}
