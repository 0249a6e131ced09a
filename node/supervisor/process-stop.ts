/**
 * Stopping a run: SIGTERM to everything in it, SIGKILL once the grace is over, and those
 * waiting for the stop told once it has exited. On the host's clock throughout: the grace
 * is a real process's, and the runtime waits on it against the same deadline.
 */
import type { Logger } from '../log'
import type { RunHandle } from '../runtime/contract'
import { fmtDelay } from './policy'
import type { InstanceLog } from './process-log'

export class StopGrace {
  private timer: NodeJS.Timeout | undefined
  private waiters: Array<() => void> = []

  constructor (private readonly ilog: InstanceLog, private readonly log: Logger) {}

  /** Resolves once the stop under way has ended (done()). */
  async ended (): Promise<void> {
    await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  /** SIGTERM now (with SIGCONT: a paused process must run to handle it), SIGKILL after `graceMs`; `stopping` says so first. */
  begin (handle: RunHandle, graceMs: number, stopping: (reason: string) => void): void {
    const reason = `stopping: SIGTERM to ${handle.what}, SIGKILL after ${fmtDelay(graceMs)}`
    this.ilog.origin(reason)
    stopping(reason)
    handle.terminate(Date.now() + graceMs)
    this.timer = setTimeout(() => {
      this.ilog.origin(`still running after ${fmtDelay(graceMs)}: SIGKILL to ${handle.what}`)
      this.log.warn(`did not stop within ${fmtDelay(graceMs)}: SIGKILL`)
      handle.kill()
    }, graceMs)
  }

  /** A run stopped while it was being created: it ends at once, no grace. */
  atOnce (handle: RunHandle): void {
    handle.terminate(Date.now())
    handle.kill()
  }

  /** The run has exited: no SIGKILL is due. */
  cancel (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  /** The stop has ended: tell whoever waits. */
  done (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }
}
