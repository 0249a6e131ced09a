/**
 * The processes of an instance, read from /proc: which live processes belong to it (a
 * process group, or every process in a PID namespace), their summed resident memory and
 * CPU time. One scan of /proc serves every instance sampling at about the same time.
 */
import { readFileSync, readlinkSync } from 'node:fs'
import { readdir, readFile, readlink } from 'node:fs/promises'
import { constants as osConstants } from 'node:os'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { parseProcStat, type ProcStat } from '../procstat'

/** The page size in KiB, measured once on our own process (4 on x86_64, 4 or 64 on arm64). */
const PAGE_KB = ((): number => {
  try {
    const pages = Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1])
    const kb = process.memoryUsage().rss / 1024 / pages
    return [4, 16, 64].reduce((best, p) => (Math.abs(p - kb) < Math.abs(best - kb) ? p : best), 4)
  } catch {
    return 4
  }
})()

/**
 * What the processes of an instance are: a process group, or everything in a PID
 * namespace (`pid:[4026532177]`) with its init. The kernel reuses the inode number of a
 * namespace that is gone, so it names the namespace only while the init runs (identified
 * by its pid and start time).
 */
export type Scope = { kind: 'group', pgid: number } | { kind: 'pidns', ns: string, init: { pid: number, startTime: number } }

/** One live process, from /proc/<pid>/stat (and ns/pid). */
export interface ProcEntry extends ProcStat {
  pid: number
  /** Its PID namespace (`pid:[4026531836]`); undefined where it cannot be read. */
  pidNs?: string
}

/** The pids of an instance, their summed RSS and CPU time. */
export interface Usage {
  pids: number[]
  rssKb: number
  cpuTicks: number
}

let scanCache: { at: number, table: Promise<ProcEntry[]> } | undefined

/**
 * Live (non-zombie) processes. One scan serves every instance sampling within 250 ms;
 * `fresh` forces a new one. Zombies are left out: where PID 1 does not reap (some
 * containers), a killed orphan stays a zombie forever but uses no memory.
 */
export async function procTable (fresh = false): Promise<ProcEntry[]> {
  const now = Date.now() // the host's: how stale a reading of the host's /proc may be
  if (!fresh && scanCache !== undefined && now - scanCache.at < 250) return await scanCache.table
  const table = scanProc()
  scanCache = { at: now, table }
  return await table
}

async function scanProc (): Promise<ProcEntry[]> {
  const names = (await readdir('/proc')).filter((n) => /^[0-9]+$/.test(n))
  const entries = await Promise.all(names.map(async (name): Promise<ProcEntry | undefined> => {
    let stat: string
    try {
      stat = await readFile(`/proc/${name}/stat`, 'utf8')
    } catch {
      return undefined // gone meanwhile
    }
    const entry = parseStat(Number(name), stat)
    if (entry === undefined) return undefined
    // Read only for the living: one readlink per process is the price of namespace membership.
    entry.pidNs = await readlink(`/proc/${name}/ns/pid`).catch(() => undefined)
    return entry
  }))
  return entries.filter((e): e is ProcEntry => e !== undefined)
}

/** Parses /proc/<pid>/stat; undefined for a zombie or dead process. */
function parseStat (pid: number, stat: string): ProcEntry | undefined {
  const s = parseProcStat(stat)
  return s === undefined ? undefined : { pid, ...s }
}

function inScope (e: ProcEntry, scope: Scope): boolean {
  return scope.kind === 'group' ? e.pgid === scope.pgid : e.pidNs === scope.ns
}

/** The live processes of an instance. */
export async function membersOf (scope: Scope, fresh = false): Promise<ProcEntry[]> {
  let members = (await procTable(fresh)).filter((e) => inScope(e, scope))
  // A shared scan from before this namespace's init started may list the processes of an
  // earlier namespace whose inode number the kernel reused: without our init, it is not ours.
  if (!fresh && scope.kind === 'pidns' && !members.some((e) => e.pid === scope.init.pid && e.startTime === scope.init.startTime)) {
    members = (await procTable(true)).filter((e) => inScope(e, scope))
  }
  // An init alive after the scan means the namespace, and so its inode, was ours throughout.
  return scope.kind === 'pidns' && !initAlive(scope) ? [] : members
}

/** The live processes of an instance, their summed RSS (statm) and CPU time. */
export async function usageOf (scope: Scope, fresh = false): Promise<Usage> {
  const members = await membersOf(scope, fresh)
  const sizes = await Promise.all(members.map(async (e) => {
    try {
      // statm's second field is resident pages: cheaper to read and parse than status.
      const resident = Number((await readFile(`/proc/${e.pid}/statm`, 'utf8')).split(' ')[1])
      return Number.isFinite(resident) ? resident * PAGE_KB : 0
    } catch {
      return 0
    }
  }))
  return {
    pids: members.map((e) => e.pid).sort((a, b) => a - b),
    rssKb: sizes.reduce((a, b) => a + b, 0),
    cpuTicks: members.reduce((a, e) => a + e.cpuTicks, 0)
  }
}

function initAlive (scope: Scope & { kind: 'pidns' }): boolean {
  return startTimeOf(scope.init.pid) === scope.init.startTime
}

/**
 * Resolves (true) once no live process is left in the scope, or (false) at the deadline.
 * A namespace is empty once its init is gone: the kernel lets the init finish exiting only
 * after every other process in it has (and its inode may already name another one).
 */
export async function waitGone (scope: Scope, deadline: number): Promise<boolean> {
  for (;;) {
    if (scope.kind === 'pidns' ? !initAlive(scope) : !(await procTable(true)).some((e) => inScope(e, scope))) return true
    if (Date.now() >= deadline) return false // real: the kernel ends processes on the host's time
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A process's start time (stat field 22), or undefined when it is gone or a zombie. */
export function startTimeOf (pid: number): number | undefined {
  try {
    return parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'))?.startTime
  } catch {
    return undefined
  }
}

/** A process's PID namespace (`pid:[4026532177]`), or undefined when it cannot be read. */
export function pidNsOf (pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`)
  } catch {
    return undefined
  }
}

/** Whether a process has handlers for all of `signals` (SigCgt in /proc/<pid>/status); false when it is gone. */
export function catchesSignals (pid: number, signals: NodeJS.Signals[]): boolean {
  try {
    const caught = BigInt('0x' + (/^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0'))
    return signals.every((sig) => (caught >> BigInt(osConstants.signals[sig] - 1)) & 1n)
  } catch {
    return false
  }
}

/** The pids of a process's children: from /proc/<pid>/task/<pid>/children where the kernel has it, else from a scan. */
export async function childrenOf (pid: number): Promise<number[]> {
  try {
    return (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(' ').filter((s) => s !== '').map(Number)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || startTimeOf(pid) === undefined) return []
    return (await procTable(true)).filter((e) => e.ppid === pid).map((e) => e.pid)
  }
}

/**
 * Signals one process (`pid`) or a whole process group (`-pgid`). One already gone is not
 * an error; any other failure (EPERM) is logged, not thrown, as this runs from timers.
 */
export function signalProcess (pid: number, sig: NodeJS.Signals, log?: Logger): boolean {
  try {
    process.kill(pid, sig)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const what = pid < 0 ? `process group ${-pid}` : `pid ${pid}`
    if (code !== 'ESRCH') log?.error(`cannot send ${sig} to ${what}: ${code ?? errorMessage(err)}`)
    return false
  }
}

/** Signals a whole process group (see signalProcess). */
export function signalGroup (pgid: number, sig: NodeJS.Signals, log?: Logger): boolean {
  return signalProcess(-pgid, sig, log)
}
