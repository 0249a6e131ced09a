/**
 * Containment: no process outlives its instance. Where the kernel allows it, an instance
 * runs in its own PID namespace; its PID 1 is a tiny shell init that forwards stop signals
 * to everything in the namespace. When that init exits the kernel kills whatever is left,
 * and when the node dies (even by SIGKILL) a parent-death signal chain ends the init:
 *
 *   node ─ setpriv --pdeathsig KILL ─> unshare --pid --fork --kill-child=SIGKILL ─> sh (init, PID 1) ─> [setpriv --reuid U ...] command ─> ...
 *
 * Elsewhere (no unshare, not permitted) instances run in their own process group with a
 * parent-death signal on the direct child: what leaves the group can outlive the instance.
 *
 * When the node is root, an instance can also run as a user of its own (see users.ts):
 * privileges are dropped last, between the init and the command, so the init stays root
 * (the node can signal it, it can signal everything in the namespace, and an instance
 * cannot signal it or read its environment) and the parent-death signal set on the
 * outer setpriv is not cleared by a change of user. Without a namespace, the one setpriv
 * does both (it sets the parent-death signal after changing user).
 * Probe once per node and log `detail`.
 *
 * @example
 *   const c = await probeContainment()
 *   log[c.pidNamespace ? 'info' : 'warn'](c.detail)
 *   for (const line of await endLeftovers(join(dataDir, 'run'), log)) log.warn(line)
 *   new ManagedProcess({ ..., containment: c, recordDir: join(dataDir, 'run') })
 */
import { execFile } from 'node:child_process'
import { accessSync, constants, mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { readdir, readFile, rm } from 'node:fs/promises'
import { constants as os } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { catchesSignals, childrenOf, membersOf, pidNsOf, signalGroup, signalProcess, startTimeOf, usageOf, waitGone, type Scope, type Usage } from './procfs'

export interface Containment {
  /** Instances run in their own PID namespace: nothing they start outlives them. */
  pidNamespace: boolean
  /** What this node can and cannot guarantee, in words: the one line to log at start. */
  detail: string
  /** setpriv, for a parent-death signal on the spawned process; undefined where missing. */
  setpriv?: string
  /** unshare and its flags, in PID namespace mode. */
  unshare?: string[]
  /** The shell that runs the init. */
  sh: string
  /** An `env` that can reset INT and QUIT to default (a shell starts background commands with them ignored). */
  env?: string
  /** Instances can run as a user of their own (the node is root and setpriv changed user in the probe). */
  users: boolean
}

/** Who an instance runs as, when not as the node's user (see users.ts). */
export interface InstanceUser {
  uid: number
  gid: number
  /** HOME of the instance. @default the node's HOME */
  home?: string
  /** TMPDIR of the instance, a directory of its own. @default none set */
  tmpDir?: string
  /** It may bind ports below 1024 (CAP_NET_BIND_SERVICE, and no other capability): a spec pins one. @default false */
  lowPorts?: boolean
}

/** Today's behaviour, and the fallback: a process group, with a parent-death signal on Linux where setpriv exists. */
export function groupContainment (detail = 'instances run in their own process group: a process that leaves it may outlive its instance'): Containment {
  const setpriv = process.platform === 'linux' ? findExecutable('setpriv') : undefined
  const killed = setpriv === undefined ? '; without setpriv, a killed node leaves its instances running until it starts again' : ''
  return { pidNamespace: false, detail: detail + killed, setpriv, sh: '/bin/sh', users: false }
}

/**
 * PID 1 of an instance. It ignores signals it has no handler for, so it traps them: TERM
 * and INT go to every other process in the namespace (`kill -1` from PID 1), followed by
 * CONT so that a paused process handles them; HUP is passed on. It waits for the command
 * (again after a trap interrupts `wait`) and exits with its status, 128+N when it was
 * killed by signal N. When asked to stop, it also waits for the rest of the instance,
 * which the node ends with SIGKILL after the grace period; otherwise, once the command is
 * gone, the rest dies with the namespace at once, as orphans of a crashed command would.
 *
 * The node sends it one signal per request (a stop is one TERM; pause and resume go to the
 * processes from /proc): bash can drop one of two trapped signals that arrive together.
 * dash, which does not, is preferred where it exists.
 */
const INIT = [
  'q=',
  "trap 'i=1 q=1; kill -TERM -1 2>/dev/null; kill -CONT -1 2>/dev/null' TERM",
  "trap 'i=1 q=1; kill -INT -1 2>/dev/null; kill -CONT -1 2>/dev/null' INT",
  "trap 'i=1; kill -HUP -1 2>/dev/null' HUP",
  '"$@" & c=$!',
  '[ -n "$q" ] && kill -TERM -1 2>/dev/null',
  'while :; do',
  '  i=; wait $c 2>/dev/null; s=$?',
  '  [ -z "$i" ] && break',
  '  kill -0 $c 2>/dev/null && continue',
  '  wait $c 2>/dev/null; r=$?; [ $r -eq 127 ] || s=$r; break',
  'done',
  'if [ -n "$q" ]; then while kill -0 -1 2>/dev/null; do sleep 0.1; done; fi',
  'exit $s'
].join('\n')

/** The signals the init handles. */
const TRAPPED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']

/**
 * setpriv flags that make a process `user`: its uid and gid, no supplementary groups
 * (root's would stay otherwise), and no_new_privs, so no set-user-ID program gives it
 * privileges back. A uid other than 0 loses every capability on the change, but the one
 * to bind ports below 1024 where `lowPorts` asks for it (as an ambient capability).
 */
export function dropFlags (user: InstanceUser): string[] {
  const low = user.lowPorts === true ? ['--inh-caps=+net_bind_service', '--ambient-caps=+net_bind_service'] : []
  return [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', ...low, '--no-new-privs']
}

/** The command the node spawns for `command args`, run as `user` when given (which needs `c.setpriv`). */
export function containCommand (c: Containment, command: string, args: string[], user?: InstanceUser): { command: string, args: string[] } {
  if (user !== undefined && c.setpriv === undefined) throw new Error('cannot run an instance as its own user without setpriv')
  const drop = user === undefined ? [] : dropFlags(user)
  let argv = [command, ...args]
  if (c.unshare !== undefined) {
    const asUser = user === undefined ? [] : [c.setpriv as string, ...drop, '--']
    // env execs the command with INT and QUIT back to default; a command named `a=b` would read as an assignment.
    const reset = c.env !== undefined && (user !== undefined || !command.includes('=')) ? [c.env, '--default-signal=INT,QUIT'] : []
    argv = [...c.unshare, '--', c.sh, '-c', INIT, 'origin-init', ...reset, ...asUser, ...argv]
  }
  if (c.setpriv !== undefined) argv = [c.setpriv, '--pdeathsig', 'KILL', ...(c.unshare === undefined ? drop : []), '--', ...argv]
  return { command: argv[0], args: argv.slice(1) }
}

export interface ProbeInit {
  /** The unshare to try, for tests. @default unshare from the PATH or /usr/bin */
  unshare?: string
}

/**
 * Finds what this node can do, by running the real wrapped command (`sh -c 'exit 3'`, which
 * must exit 3): a PID namespace (with its own /proc, so a process's pid and /proc agree)
 * as root; else inside an unprivileged user namespace; else a process group. As root it
 * then runs the same as another user, to know whether instances can have users of their own.
 */
export async function probeContainment (init: ProbeInit = {}): Promise<Containment> {
  return await probeUsers(await probeProcesses(init))
}

async function probeProcesses (init: ProbeInit): Promise<Containment> {
  if (process.platform !== 'linux') return groupContainment(`not Linux (${process.platform}): instances run in their own process group, and a process that leaves it may outlive its instance`)
  const base = groupContainment()
  const unshare = init.unshare ?? findExecutable('unshare')
  const sh = findExecutable('dash') ?? findExecutable('sh') ?? '/bin/sh'
  if (unshare === undefined) return groupContainment('cannot give instances their own PID namespace (no unshare from util-linux): a process that leaves its process group may outlive its instance')
  const root = process.getuid?.() === 0
  const users = root ? [[]] : [[], ['--user', '--map-current-user'], ['--user', '--map-root-user']]
  const pid = ['--pid', '--fork', '--kill-child=SIGKILL']
  const proc = ['--mount-proc', '--propagation', 'slave']
  let firstError: string | undefined
  for (const user of users) {
    for (const extra of [proc, []]) {
      const c: Containment = { ...base, pidNamespace: true, sh, unshare: [unshare, ...user, ...pid, ...extra] }
      const { command, args } = containCommand(c, sh, ['-c', 'exit 3'])
      const r = await run(command, args)
      if (r.code === 3) {
        const env = findExecutable('env')
        if (env !== undefined && (await run(env, ['--default-signal=INT,QUIT', sh, '-c', 'exit 0'])).code === 0) c.env = env
        c.detail = describe(user.length > 0, extra.length > 0, c.setpriv !== undefined)
        return c
      }
      firstError ??= r.stderr.trim().split('\n')[0] || `exit code ${String(r.code)}`
    }
  }
  return groupContainment(`cannot give instances their own PID namespace (${firstError ?? '?'}): a process that leaves its process group may outlive its instance, and memory limits count only the group`)
}

/** The uid the probe changes to: `nobody` by convention; any unused id would do, none needs to exist. */
const PROBE_USER: InstanceUser = { uid: 65534, gid: 65534 }

/** Whether instances can run as users of their own, said at the end of `detail` either way. */
async function probeUsers (c: Containment): Promise<Containment> {
  const uid = process.getuid?.()
  if (uid === undefined) return c
  if (uid !== 0) {
    // With a /proc of their own they do not see each other's processes; the files stay shared.
    const what = c.unshare?.includes('--mount-proc') === true ? 'they can read' : 'each can read the others\' environment (ORIGIN_API_KEY included) and'
    return { ...c, detail: `${c.detail}; instances run as this node's user (uid ${uid}, not root), so ${what} every file this node can, its keys included` }
  }
  if (c.setpriv === undefined) return { ...c, detail: `${c.detail}; instances run as root (no setpriv to change user), so each can read the others' environment and every file of this node, its keys included` }
  const { command, args } = containCommand(c, c.sh, ['-c', 'exit 3'], PROBE_USER)
  const r = await run(command, args)
  if (r.code !== 3) {
    const why = r.stderr.trim().split('\n')[0] || `exit code ${String(r.code)}`
    return { ...c, detail: `${c.detail}; instances run as root (setpriv cannot change user: ${why}), so each can read the others' environment and every file of this node, its keys included` }
  }
  return { ...c, users: true, detail: `${c.detail}; each service runs as a user of its own, with no access to other services' processes or to this node's keys and data` }
}

function describe (userNs: boolean, ownProc: boolean, setpriv: boolean): string {
  const how = `instances run in their own PID namespace${ownProc ? ' with their own /proc' : ''}${userNs ? ' (inside a user namespace, as this node is not root)' : ''}`
  return setpriv
    ? `${how}: nothing they start outlives them, even when this node is killed`
    : `${how}: nothing they start outlives them, but without setpriv a killed node leaves them running until it starts again`
}

async function run (command: string, args: string[]): Promise<{ code: number | string | null, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(command, args, { timeout: 5000 }, (err, _stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number | string }).code ?? null), stderr: String(stderr) })
    })
  })
}

/** An executable on the node's PATH or in the usual places, by absolute path: an instance's own PATH must not pick the wrapper. */
export function findExecutable (name: string, path = `${process.env.PATH ?? ''}${delimiter}/usr/bin${delimiter}/bin${delimiter}/usr/sbin${delimiter}/sbin`): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '' || !dir.startsWith('/')) continue
    const file = join(dir, name)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {}
  }
  return undefined
}

/** The signal an exit status 128+N from the init stands for (the command was killed by signal N). */
export function signalOfStatus (code: number | null): NodeJS.Signals | undefined {
  if (code === null || code <= 128 || code > 128 + 64) return undefined
  return (Object.keys(os.signals) as NodeJS.Signals[]).find((s) => os.signals[s] === code - 128)
}

// ---- the processes of one run ----

/** PID 1 of an instance's namespace, as the node sees it. */
interface Init { pid: number, startTime: number, ns: string }

/** What a running instance leaves in the record dir, so that a node starting after a crash of its own can end it. */
export interface InstanceRecord {
  id: string
  /** The spawned process (setpriv, then unshare) and its start time: with the pid, names it across pid reuse. */
  pid: number
  startTime: number
  /** PID namespace mode: its init, once seen. */
  init?: Init
}

/**
 * The processes of one run of an instance (one spawn): how to signal, measure and end them
 * all. In PID namespace mode that is every process in the namespace; otherwise the
 * process group of the spawned process.
 */
export class InstanceProcesses {
  /** What a signal reaches, in words for the logs: `SIGKILL to the instance`. */
  readonly what: string
  private init: Init | undefined
  private readonly found: Promise<Init | undefined>
  private exited = false
  private readonly record?: string
  /** The spawned process's start time, read once: with the pid, names it across pid reuse. */
  private readonly startTime: number | undefined

  constructor (private readonly c: Containment, readonly pid: number, private readonly o: { id: string, recordDir?: string, log: Logger }) {
    this.what = c.pidNamespace ? 'the instance' : 'the group'
    this.startTime = startTimeOf(pid)
    if (o.recordDir !== undefined) this.record = join(o.recordDir, `${o.id.replace(/[^A-Za-z0-9_.-]/g, '_')}.${pid}.json`)
    this.writeRecord()
    this.found = c.pidNamespace ? this.findInit() : Promise.resolve(undefined)
  }

  /**
   * The init is unshare's child; it appears within milliseconds of the spawn. It counts as
   * found once it has set its traps: PID 1 drops a signal it has no handler for, so a stop
   * sent earlier would be lost.
   */
  private async findInit (): Promise<Init | undefined> {
    const own = pidNsOf('self')
    for (let i = 0; i < 500 && !this.exited; i++) {
      const [pid] = await childrenOf(this.pid)
      if (this.exited) break
      const ns = pid === undefined ? undefined : pidNsOf(pid)
      const startTime = pid === undefined ? undefined : startTimeOf(pid)
      if (pid !== undefined && ns !== undefined && ns !== own && startTime !== undefined && catchesSignals(pid, TRAPPED)) {
        this.init = { pid, startTime, ns }
        this.writeRecord()
        return this.init
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    if (!this.exited) this.o.log.warn(`cannot find the init of pid ${this.pid} (or it set no traps): its memory is not measured, and it can only be stopped with SIGKILL`)
    return undefined
  }

  /** SIGTERM to every process (through the init), and SIGCONT so a paused one handles it. */
  terminate (): void {
    if (!this.c.pidNamespace) {
      signalGroup(this.pid, 'SIGTERM', this.o.log)
      signalGroup(this.pid, 'SIGCONT', this.o.log)
      return
    }
    this.inOrder((init) => { signalProcess(init.pid, 'SIGTERM', this.o.log) }) // its trap sends CONT too
  }

  /** SIGSTOP to every process of the instance. */
  pause (): void {
    if (!this.c.pidNamespace) signalGroup(this.pid, 'SIGSTOP', this.o.log)
    else this.inOrder(async (init) => { await this.stopAll(init) })
  }

  /** SIGCONT to every process of the instance. */
  resume (): void {
    if (!this.c.pidNamespace) { signalGroup(this.pid, 'SIGCONT', this.o.log); return }
    this.inOrder(async (init) => {
      for (const e of await membersOf({ kind: 'pidns', ns: init.ns, init }, true)) signalProcess(e.pid, 'SIGCONT', this.o.log)
    })
  }

  /** Requests to the namespace run one after the other, once its init is known: a resume must not overtake its pause. */
  private queue: Promise<void> = Promise.resolve()
  private inOrder (fn: (init: Init) => void | Promise<void>): void {
    this.queue = this.queue.then(async () => {
      const init = await this.found
      if (init !== undefined && !this.exited) await fn(init)
    }).catch((err) => { this.o.log.error(`cannot signal the processes of pid ${this.pid}: ${errorMessage(err)}`) })
  }

  /**
   * SIGSTOP to every process in the namespace but its init, which stays awake to pass a
   * stop on. A process forking meanwhile has a child the scan missed: scan again until
   * every one is stopped (a stopped process forks no more).
   */
  private async stopAll (init: Init): Promise<void> {
    const scope: Scope = { kind: 'pidns', ns: init.ns, init }
    for (let round = 0; round < 20; round++) {
      const running = (await membersOf(scope, true)).filter((e) => e.pid !== init.pid && e.state !== 'T' && e.state !== 't')
      if (running.length === 0 || this.exited) return
      for (const e of running) signalProcess(e.pid, 'SIGSTOP', this.o.log)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    this.o.log.warn(`some processes of pid ${this.pid} keep running after 20 rounds of SIGSTOP`)
  }

  /**
   * SIGKILL to everything now (synchronous, usable on 'exit'). In namespace mode the
   * spawned unshare dies first, so it cannot report its child's death as an error of its
   * own; --kill-child would end the init anyway.
   */
  kill (): void {
    if (!this.c.pidNamespace) { signalGroup(this.pid, 'SIGKILL', this.o.log); return }
    // Once it has exited (and may have been reaped) its pid is not ours: ended() does the rest.
    if (!this.exited) signalProcess(this.pid, 'SIGKILL', this.o.log)
    if (this.init !== undefined && !this.exited) signalProcess(this.init.pid, 'SIGKILL', this.o.log)
  }

  /**
   * What the watchdog (watchdog.ts) SIGKILLs to end this run when the node cannot:
   * `p:PID:START` for one process (the init first, then the spawned unshare, whose death
   * kills the init too), `g:PID:START` for the process group PID leads. With the start
   * time, a pid the kernel has since given to another process is never hit.
   */
  fenceTargets (): string[] {
    if (this.exited || this.startTime === undefined) return []
    if (!this.c.pidNamespace) return [`g:${this.pid}:${this.startTime}`]
    const init = this.init === undefined ? [] : [`p:${this.init.pid}:${this.init.startTime}`]
    return [...init, `p:${this.pid}:${this.startTime}`]
  }

  /** The live processes of the instance, their summed RSS and CPU time. */
  async usage (fresh = false): Promise<Usage> {
    const scope = await this.scope()
    return scope === undefined ? { pids: [], rssKb: 0, cpuTicks: 0 } : await usageOf(scope, fresh)
  }

  private async scope (): Promise<Scope | undefined> {
    if (!this.c.pidNamespace) return { kind: 'group', pgid: this.pid }
    const init = await this.found
    return init === undefined ? undefined : { kind: 'pidns', ns: init.ns, init }
  }

  /** How the command ended: the init exits 128+N when the command was killed by signal N. */
  exitOf (code: number | null, signal: NodeJS.Signals | null): { code: number | null, signal: NodeJS.Signals | null } {
    const sig = this.c.pidNamespace && signal === null ? signalOfStatus(code) : undefined
    return sig === undefined ? { code, signal } : { code: null, signal: sig }
  }

  /**
   * The spawned process exited: end what is left, then forget the record. A group without
   * its leader is orphans in the making, killed at once (while stopping, after the rest had
   * until `deadline`). A namespace is gone with its init; the init already gave the rest
   * the grace period when asked to stop.
   */
  async ended (stopping: boolean, deadline: number): Promise<void> {
    this.exited = true
    try {
      if (!this.c.pidNamespace) {
        if (stopping) await waitGone({ kind: 'group', pgid: this.pid }, deadline)
        signalGroup(this.pid, 'SIGKILL', this.o.log)
      } else if (this.init !== undefined) {
        if (startTimeOf(this.init.pid) === this.init.startTime) signalProcess(this.init.pid, 'SIGKILL', this.o.log)
        if (!await waitGone({ kind: 'pidns', ns: this.init.ns, init: this.init }, Date.now() + 5000)) this.o.log.error(`the init of ${this.init.ns} (pid ${this.init.pid}) is still there 5 s after SIGKILL`)
      }
      if (this.record !== undefined) await rm(this.record, { force: true })
    } catch (err) {
      this.o.log.error(`cannot make sure pid ${this.pid} left nothing behind: ${errorMessage(err)}`)
    }
  }

  private writeRecord (): void {
    if (this.record === undefined || this.exited) return // once ended, its record is being removed
    const startTime = startTimeOf(this.pid)
    if (startTime === undefined) return // already gone: nothing to leave behind
    const rec: InstanceRecord = { id: this.o.id, pid: this.pid, startTime, init: this.init }
    try {
      mkdirSync(dirname(this.record), { recursive: true })
      // Written whole, then renamed: a node killed mid-write leaves no half record.
      writeFileSync(`${this.record}.tmp`, JSON.stringify(rec) + '\n')
      renameSync(`${this.record}.tmp`, this.record)
    } catch (err) {
      this.o.log.warn(`cannot write ${this.record}: ${errorMessage(err)}; a node that crashes cannot end this instance when it restarts`)
    }
  }
}

// ---- leftovers of a previous run ----

/**
 * For a node starting: ends (SIGKILL, the whole namespace or group) every instance a
 * previous run of it recorded that still runs, waits until it is gone and removes the
 * records. A recorded pid is touched only while it has the recorded start time, so a pid
 * the kernel has since given to another process is never killed. Returns what it ended,
 * in words for the log.
 */
export async function endLeftovers (recordDir: string, log?: Logger): Promise<string[]> {
  let names: string[]
  try {
    names = (await readdir(recordDir)).filter((n) => n.endsWith('.json') || n.endsWith('.json.tmp'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const ended: string[] = []
  for (const name of names) {
    const file = join(recordDir, name)
    let rec: InstanceRecord | undefined
    try {
      rec = name.endsWith('.json') ? JSON.parse(await readFile(file, 'utf8')) as InstanceRecord : undefined
    } catch (err) {
      log?.warn(`cannot read the instance record ${file}: ${errorMessage(err)}; removing it`)
    }
    if (rec !== undefined) {
      const what = await endOne(rec)
      if (what !== undefined) ended.push(what)
    }
    await rm(file, { force: true })
  }
  return ended
}

async function endOne (rec: InstanceRecord): Promise<string | undefined> {
  const live = (p: { pid: number, startTime: number } | undefined): boolean => p !== undefined && startTimeOf(p.pid) === p.startTime
  const init = live(rec.init) ? rec.init : undefined
  const spawned = live(rec) ? rec : undefined
  if (init === undefined && spawned === undefined) return undefined
  let count = 0
  if (init !== undefined) {
    count = (await usageOf({ kind: 'pidns', ns: init.ns, init }, true)).pids.length
    signalProcess(init.pid, 'SIGKILL') // ends the namespace
  }
  if (spawned !== undefined) {
    if (rec.init === undefined) count = (await usageOf({ kind: 'group', pgid: spawned.pid }, true)).pids.length
    signalProcess(spawned.pid, 'SIGKILL')
    // Without a namespace, its group is what can be ended: the pid is ours, so is the group it leads.
    if (rec.init === undefined) signalGroup(spawned.pid, 'SIGKILL')
  }
  const deadline = Date.now() + 5000
  if (init !== undefined) await waitGone({ kind: 'pidns', ns: init.ns, init }, deadline)
  else await waitGone({ kind: 'group', pgid: rec.pid }, deadline)
  const how = init !== undefined ? `its PID namespace, ${count} processes` : `its process group, ${count} processes`
  return `ended ${rec.id}, left running by a previous run of this node (pid ${rec.pid}, ${how})`
}
