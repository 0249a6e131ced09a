/** Whether a process is gone: no such pid, or a zombie (PID 1 here may not reap orphans; a zombie runs nothing). */
import { readFile } from 'node:fs/promises'

export async function gone (pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  return stat === '' || /^\d+ \(.*\) Z/.test(stat)
}
