/**
 * The process runtime: a run is a host process spawned contained (its own PID namespace
 * where the node can, else its own process group; see supervisor/contain.ts), with its
 * output piped to the supervisor and everything it started ended when it exits.
 *
 * @example
 *   const rt = processRuntime({ containment: await probeContainment(), recordDir: join(dataDir, 'run') })
 *   const h = rt.start({ id: 'web-1', program: { kind: 'command', command: 'node', cwd }, args: ['server.js'], env, log, output })
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, resolve as resolvePath } from 'node:path'
import { InstanceProcesses, containCommand, groupContainment, type Containment, type InstanceUser } from '../supervisor/contain'
import type { RunExit, RunHandle, RunRequest, RunUsage, Runtime } from './contract'

export interface ProcessRuntimeInit {
  /** How runs are contained: probeContainment() once per node. @default groupContainment() */
  containment?: Containment
  /**
   * Where a running instance keeps a record of its processes (DATA/run), so that a node
   * restarting after a crash ends them with endLeftovers() before it starts anything.
   * @default none: nothing is recorded
   */
  recordDir?: string
}

/**
 * After the spawned process exits, how long to wait for its pipes to close (a process that
 * left the group may hold them). Real time, whatever the node's clock: OS processes are waited on.
 */
export const DRAIN_MS = 1000

/** Shared by every runtime not given a containment: looking for setpriv once is enough. */
let defaultContainment: Containment | undefined

export function processRuntime (init: ProcessRuntimeInit = {}): Runtime & { readonly containment: Containment } {
  const containment = init.containment ?? (defaultContainment ??= groupContainment())
  return { kind: 'process', containment, start: (req) => startProcess(containment, init.recordDir, req) }
}

function startProcess (c: Containment, recordDir: string | undefined, req: RunRequest): RunHandle {
  if (req.program.kind !== 'command') throw new Error(`the process runtime cannot run image ${req.program.image}`)
  const { command, cwd } = req.program
  const env = childEnv(req.env, req.user)
  if (!statSync(cwd, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`working directory ${cwd} does not exist`)
  // Checked here: behind the wrapper, a missing command would only be an exit code 127.
  checkExecutable(command, cwd, env.PATH)
  const wrapped = containCommand(c, command, req.args, req.user)
  const child = spawn(wrapped.command, wrapped.args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  if (child.pid === undefined) {
    // The spawn failed (ENOENT, EACCES): Node reports it as 'error' on the next tick.
    const failed = new Promise<RunExit>((resolve) => child.once('error', (err) => resolve({ code: null, signal: null, reason: `could not start: ${err.message}` })))
    return notStarted(failed)
  }
  return new ProcessRun(c, child, child.pid, recordDir, req)
}

/** The `started` of a run that never started (its exit says why). */
export const NOT_STARTED = 'nothing (it did not start)'

/** A spawn that never got a pid: nothing to signal, its exit is the spawn error. */
function notStarted (exit: Promise<RunExit>): RunHandle {
  return {
    what: NOT_STARTED,
    started: NOT_STARTED,
    memoryScope: 'nothing',
    enforcesMemory: false,
    gone: exit.then(() => undefined),
    exit,
    terminate: () => {},
    kill: () => {},
    pause: () => {},
    resume: () => {},
    usage: async () => ({ pids: [], rssKb: 0, cpuTicks: 0 }),
    fenceTargets: () => []
  }
}

class ProcessRun implements RunHandle {
  readonly what: string
  readonly started: string
  readonly memoryScope: string
  readonly enforcesMemory = false
  readonly gone: Promise<void>
  readonly exit: Promise<RunExit>
  private readonly procs: InstanceProcesses
  private deadline: number | undefined

  constructor (c: Containment, private readonly child: ChildProcess, readonly pid: number, recordDir: string | undefined, req: RunRequest) {
    this.procs = new InstanceProcesses(c, pid, { id: req.id, recordDir, log: req.log })
    this.what = this.procs.what
    this.started = `pid ${pid}`
    this.memoryScope = c.pidNamespace ? 'the whole instance' : 'the whole process group'
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()))
    child.stdout?.on('data', (b: Buffer) => req.output('out', b))
    child.stderr?.on('data', (b: Buffer) => req.output('err', b))
    child.on('error', (e) => req.log.warn(`child process error: ${e.message}`))
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])))
    this.gone = exited.then(() => undefined)
    this.exit = exited.then(async ([code, signal]) => await this.afterExit(code, signal, closed))
  }

  /** The spawned process is gone: end what is left of the run, let its output drain. */
  private async afterExit (exitCode: number | null, exitSignal: NodeJS.Signals | null, closed: Promise<void>): Promise<RunExit> {
    const { code, signal } = this.procs.exitOf(exitCode, exitSignal)
    await this.procs.ended(this.deadline !== undefined, this.deadline ?? 0)
    let drainTimer: NodeJS.Timeout | undefined
    const drained = await Promise.race([
      closed.then(() => true),
      new Promise<boolean>((resolve) => { drainTimer = setTimeout(() => resolve(false), DRAIN_MS) })
    ])
    clearTimeout(drainTimer)
    if (!drained) {
      // Something that left the group holds the pipes; stop reading them.
      this.child.stdout?.destroy()
      this.child.stderr?.destroy()
    }
    return { code, signal }
  }

  terminate (deadline: number): void {
    this.deadline = deadline
    this.procs.terminate() // with SIGCONT: a paused process must run to handle SIGTERM
  }

  kill (): void { this.procs.kill() }
  pause (): void { this.procs.pause() }
  resume (): void { this.procs.resume() }
  async usage (): Promise<RunUsage> { return await this.procs.usage() }
  fenceTargets (): string[] { return this.procs.fenceTargets() }
}

/**
 * A run's environment: the instance's, over a minimal one inherited from the node (PATH,
 * HOME and LANG only). The node's own variables (its config, anything secret) do not leak
 * into workloads; a process needs what it is given by the spec and little else.
 */
export function childEnv (env: Record<string, string>, user?: InstanceUser): Record<string, string> {
  const base: Record<string, string> = {}
  for (const k of ['PATH', 'HOME', 'LANG']) {
    const v = process.env[k]
    if (v !== undefined) base[k] = v
  }
  // The node's HOME is none of an instance's business when it runs as a user of its own.
  if (user?.home !== undefined) base.HOME = user.home
  if (user?.tmpDir !== undefined) base.TMPDIR = user.tmpDir
  return { ...base, ...env }
}

/** Throws, in words, unless `command` names an executable file (on `path` when it has no slash). */
function checkExecutable (command: string, cwd: string, path: string | undefined): void {
  const candidates = command.includes('/')
    ? [resolvePath(cwd, command)]
    : (path ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter).map((dir) => resolvePath(cwd, dir, command))
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) continue
      accessSync(file, constants.X_OK)
      return
    } catch {}
  }
  throw new Error(command.includes('/') ? `${command} is not an executable file` : `${command} not found on the PATH`)
}
