/**
 * /proc/<pid>/stat, parsed once for every layer that reads it: the supervisor's scans of
 * instances, the stats' CPU rates, the spec evaluator's CPU time limit.
 */
import { readFile } from 'node:fs/promises'

/** Clock ticks per second of /proc CPU times (USER_HZ): 100 on every Linux origin runs on. */
export const USER_HZ = 100

/** What origin uses of one /proc/<pid>/stat line. */
export interface ProcStat {
  ppid: number
  pgid: number
  /** R, S, D, T (stopped), t (traced), ... */
  state: string
  /** Clock ticks since boot when it started (field 22): with the pid, names a process across pid reuse. */
  startTime: number
  /** utime + stime + cutime + cstime: its own CPU and that of the children it reaped, so a sum over an instance never drops when a worker exits. */
  cpuTicks: number
}

/** Parses a /proc/<pid>/stat line; undefined for a zombie or dead process. */
export function parseProcStat (stat: string): ProcStat | undefined {
  // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses. Field N is at N - 3.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  if (f[0] === 'Z' || f[0] === 'X') return undefined
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
  return { ppid: Number(f[1]), pgid: Number(f[2]), state: f[0], startTime: Number(f[19]), cpuTicks: ticks }
}

/** CPU time (ms) process `pid` and its reaped children have used; undefined where /proc cannot tell. */
export async function cpuTimeMs (pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  const ticks = stat === undefined ? undefined : parseProcStat(stat)?.cpuTicks
  return ticks !== undefined && Number.isFinite(ticks) ? ticks * 1000 / USER_HZ : undefined
}
