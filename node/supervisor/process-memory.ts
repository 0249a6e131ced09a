/**
 * Memory sampling of one run: its RSS (all its processes) read on a clock shared by every
 * instance of the node, fed to the status, and held to the limit by policy.ts overMemory.
 */
import type { Clock } from '../clock'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { overMemory, samplingClock } from './policy'
import { after, type Run } from './process-types'

export interface MemoryHost {
  /** When samples are taken; what a sample reads (RSS from /proc or the engine) is the host's. */
  clock: Clock
  live: (run: Run) => boolean
  /** The sample, for the status (not a change of state). */
  sampled: (rssMb: number) => void
  /** origin is killing the run already (for memory), or the run is stopping. */
  busy: () => { killing: boolean, stopping: boolean }
  /** Kill the run for `reason`, which becomes its exit reason. */
  kill: (reason: string) => void
  log: Logger
}

export function startSampling (run: Run, o: { limitMb?: number, sampleIntervalMs?: number }, host: MemoryHost): void {
  const { everyMs, firstInMs } = samplingClock(host.clock.now(), o.limitMb !== undefined, o.sampleIntervalMs)
  after(run, host.clock, firstInMs, () => {
    void sample(run, o.limitMb, host)
    run.timers.add(host.clock.every(everyMs, () => { void sample(run, o.limitMb, host) }))
  })
}

async function sample (run: Run, limitMb: number | undefined, host: MemoryHost): Promise<void> {
  if (run.sampling || run.exited) return
  run.sampling = true
  try {
    const { rssKb, pids } = await run.handle.usage()
    if (run.exited || !host.live(run)) return
    host.sampled(Math.round(rssKb / 1024))
    const { killing, stopping } = host.busy()
    const reason = overMemory({ rssKb, pids: pids.length }, { limitMb, enforcedByRuntime: run.handle.enforcesMemory, alreadyKilling: killing, stopping, scope: run.handle.memoryScope })
    if (reason !== undefined) host.kill(reason)
  } catch (err) {
    host.log.debug(`could not sample memory of ${run.handle.started}: ${errorMessage(err)}`)
  } finally {
    run.sampling = false
  }
}
