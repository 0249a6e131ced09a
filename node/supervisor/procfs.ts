/**
 * Process groups and their memory, read from /proc: which live processes belong to a group,
 * and their summed resident memory. One scan of /proc serves every instance sampling at
 * about the same time.
 */
import { readFileSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { errorMessage } from '../errors'
import type { Logger } from '../log'

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

let scanCache: { at: number, groups: Promise<Map<number, number[]>> } | undefined

/**
 * Live (non-zombie) pids by process group, from /proc/<pid>/stat. One scan serves every
 * instance sampling within 250 ms. Zombies are left out: where PID 1 does not reap
 * (some containers), a killed orphan stays a zombie forever but uses no memory.
 */
export async function processGroups (): Promise<Map<number, number[]>> {
  const now = Date.now()
  if (scanCache !== undefined && now - scanCache.at < 250) return await scanCache.groups
  const groups = scanProc()
  scanCache = { at: now, groups }
  return await groups
}

async function scanProc (): Promise<Map<number, number[]>> {
  const groups = new Map<number, number[]>()
  const names = (await readdir('/proc')).filter((n) => /^[0-9]+$/.test(n))
  await Promise.all(names.map(async (name) => {
    let stat: string
    try {
      stat = await readFile(`/proc/${name}/stat`, 'utf8')
    } catch {
      return // gone meanwhile
    }
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z' || fields[0] === 'X') return
    const pgid = Number(fields[2])
    const list = groups.get(pgid)
    if (list === undefined) groups.set(pgid, [Number(name)])
    else list.push(Number(name))
  }))
  return groups
}

/** The summed VmRSS (kB) of every live process in the group. */
export async function groupRssKb (pgid: number): Promise<number> {
  const members = (await processGroups()).get(pgid) ?? []
  const sizes = await Promise.all(members.map(async (pid) => {
    try {
      // statm's second field is resident pages: cheaper to read and parse than status.
      const resident = Number((await readFile(`/proc/${pid}/statm`, 'utf8')).split(' ')[1])
      return Number.isFinite(resident) ? resident * PAGE_KB : 0
    } catch {
      return 0
    }
  }))
  return sizes.reduce((a, b) => a + b, 0)
}

export async function waitGroupGone (pgid: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    scanCache = undefined
    if (((await processGroups()).get(pgid) ?? []).length === 0) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * Signals a whole process group. A group already gone is not an error; any other failure
 * (EPERM) is logged, not thrown, as this runs from timers.
 */
export function signalGroup (pgid: number, sig: NodeJS.Signals, log?: Logger): boolean {
  try {
    process.kill(-pgid, sig)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ESRCH') log?.error(`cannot send ${sig} to process group ${pgid}: ${code ?? errorMessage(err)}`)
    return false
  }
}
