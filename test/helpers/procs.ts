/** Processes on this machine, as the host sees them (instances run in PID namespaces, so the pids they print are not these). */
import { readdir, readFile, readlink } from 'node:fs/promises'

/** Whether a process is gone: no such pid, or a zombie (PID 1 here may not reap orphans; a zombie runs nothing). */
export async function gone (pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  return stat === '' || /^\d+ \(.*\) Z/.test(stat)
}

/**
 * Host pids of live processes whose program is `program` (the basename of argv[0]) and whose
 * arguments include `marker`: the instance's own processes, not the wrappers that start them.
 */
export async function running (program: string, marker: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number)
  const found = await Promise.all(pids.map(async (pid) => {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean)
    if (argv.length === 0 || argv[0].split('/').pop() !== program || !argv.some((a) => a.includes(marker))) return undefined
    return await gone(pid) ? undefined : pid
  }))
  return found.filter((p): p is number => p !== undefined)
}

/**
 * Host pids of live processes whose working directory is inside `dir`: every process of a
 * node's instances runs in a code tree under the node's data dir, whatever it renamed
 * itself to (nginx workers rewrite their command line).
 */
export async function workingIn (dir: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number)
  const found = await Promise.all(pids.map(async (pid) => {
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '')
    if (cwd !== dir && !cwd.startsWith(dir + '/')) return undefined
    return await gone(pid) ? undefined : pid
  }))
  return found.filter((p): p is number => p !== undefined)
}

/** CPU time of every live process, in clock ticks (utime + stime), with its command line. */
async function cpuTicks (): Promise<Map<number, { ticks: number, command: string }>> {
  const out = new Map<number, { ticks: number, command: string }>()
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number)
  await Promise.all(pids.map(async (pid) => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields.length < 13) return
    const command = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim()
    out.set(pid, { ticks: Number(fields[11]) + Number(fields[12]), command })
  }))
  return out
}

/**
 * What else keeps this machine busy: the processes that used more than `minPercent` of a
 * core over `ms`, busiest first, as `pid 37% command`. For tests whose outcome depends on
 * having the CPU to themselves (a failure then says whether something left over from
 * earlier tests was running beside them).
 */
export async function busiest (ms = 1000, minPercent = 5): Promise<string[]> {
  const before = await cpuTicks()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const after = await cpuTicks()
  const rows: Array<[number, string]> = []
  for (const [pid, a] of after) {
    const b = before.get(pid)
    if (b === undefined) continue
    const percent = (a.ticks - b.ticks) * 10 * 100 / ms // 100 ticks a second on Linux
    if (percent > minPercent) rows.push([percent, `${pid} ${percent.toFixed(0)}% ${a.command.slice(0, 120)}`])
  }
  return rows.sort((x, y) => y[0] - x[0]).map(([, r]) => r)
}
