/**
 * Restart scheduling of one instance: what the restart policy (policy.ts, pure) remembers
 * between runs, its decision after a run put in the words the logs and the status use,
 * and the backoff timer, on the supervisor's clock.
 */
import type { Clock, Timer } from '../clock'
import { afterExit, fmtDelay, fmtWindow, freshRestarts, type RestartMemory, type RestartSettings } from './policy'
import type { ManagedProcessOptions } from './process-types'

/** What follows a run that ended with `what`: no more runs (stopped or failed), or one after `delayMs`. */
export type AfterRun =
  | { restart: false, state: 'stopped' | 'failed', reason: string, originLine: string, level: 'info' | 'error', logLine: string }
  | { restart: true, delayMs: number, reason: string, originLine: string }

/** The restart policy's settings as an instance's options give them. */
export function restartSettings (o: Pick<ManagedProcessOptions, 'restart' | 'stableAfterMs' | 'crashLoop'>): RestartSettings {
  return { ...o.restart, stableAfterMs: o.stableAfterMs, crashLoopRestarts: o.crashLoop?.restarts, crashLoopWindowMs: o.crashLoop?.windowMs }
}

export class RestartSchedule {
  private memory: RestartMemory = freshRestarts()
  private timer?: Timer

  constructor (private readonly clock: Clock, private readonly settings: RestartSettings) {}

  /** A fresh start (start() after a stop or a failure): no backoff, no restarts remembered. */
  reset (): void {
    this.memory = freshRestarts()
  }

  /** After a run that ended with `what` (failed or not, after `ranForMs`): the policy's decision, now. */
  next (what: string, failed: boolean, ranForMs?: number): AfterRun {
    const d = afterExit(this.settings, this.memory, { failed, ranForMs }, this.clock.now())
    this.memory = d.memory
    const policy = this.settings.policy
    if (d.kind === 'final') {
      return { restart: false, state: d.state, reason: what, originLine: `${d.state}: restart policy ${policy}, not restarting`, level: failed ? 'error' : 'info', logLine: `${what}; restart policy ${policy}, not restarting` }
    }
    if (d.kind === 'crash-loop') {
      const reason = `crash loop: ${d.restarts} restarts within ${fmtWindow(d.windowMs)}, not restarting (last: ${what})`
      return { restart: false, state: 'failed', reason, originLine: reason, level: 'error', logLine: reason }
    }
    const wait = `restarting in ${fmtDelay(d.delayMs)} (attempt ${d.attempt})`
    return { restart: true, delayMs: d.delayMs, reason: `${what}; ${wait}`, originLine: wait }
  }

  /** Runs `restart` once `delayMs` has passed on the clock, unless cancelled. */
  after (delayMs: number, restart: () => void): void {
    this.cancel()
    this.timer = this.clock.after(delayMs, () => { this.timer = undefined; restart() })
  }

  cancel (): void {
    this.timer?.cancel()
    this.timer = undefined
  }
}
