/** Helpers over many or one ManagedProcess: kill them all at once, wait for one to be ready. */
import { OriginError } from '../errors'
import type { ManagedProcess } from './process'
import type { InstanceStatus } from './process-types'

/** SIGKILL every instance now (its namespace or group), no restarts: for a node shutting down (synchronous, so usable on 'exit'). */
export function killAllGroups (processes: Iterable<ManagedProcess>): void {
  for (const p of processes) p.kill()
}

/** Resolves once `p` is ready; rejects (E_NOT_READY, with the status reason) if it stops, fails, or time runs out. */
export async function waitReady (p: ManagedProcess, timeoutMs: number): Promise<InstanceStatus> {
  return await new Promise((resolve, reject) => {
    const notReady = (s: InstanceStatus, why: string): OriginError =>
      new OriginError('E_NOT_READY', `${p.id} ${why}: ${s.state}${s.reason !== undefined ? ` (${s.reason})` : ''}`, { id: p.id, state: s.state, reason: s.reason }, 'waitReady')
    const onStatus = (s: InstanceStatus): boolean => {
      if (s.state === 'ready') {
        done()
        resolve(s)
        return true
      }
      if (s.state === 'failed' || s.state === 'stopped') {
        done()
        reject(notReady(s, 'will not become ready'))
        return true
      }
      return false
    }
    // The caller's patience, on real time: it decides nothing for the cluster.
    const timer = setTimeout(() => { done(); reject(notReady(p.status(), `not ready after ${timeoutMs} ms`)) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); p.off('status', onStatus) }
    if (onStatus(p.status())) return
    p.on('status', onStatus)
  })
}
