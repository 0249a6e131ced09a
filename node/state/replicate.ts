/**
 * The clock of one replicated instance: a snapshot round every `intervalMs` while it runs
 * here, rounds never overlapping, and a last round (without the hook: nothing writes any
 * more) when it stops gracefully. What a round does is the layer's (`snapshotRound`).
 */
import type { Clock, Timer } from '../clock'

export class Replicator {
  private timer?: Timer
  private chain: Promise<void> = Promise.resolve()
  private stopped = false

  constructor (
    private readonly intervalMs: number,
    /** One snapshot and its copies; `useHook` false for the last one, taken after the process stopped. Must not throw. */
    private readonly snapshot: (useHook: boolean) => Promise<void>,
    private readonly clock: Clock
  ) {}

  start (): void { this.schedule() }

  private schedule (): void {
    if (this.stopped) return
    this.timer = this.clock.after(this.intervalMs, () => { void this.run(true).then(() => this.schedule()) }).unref()
  }

  /** A round after the ones under way. */
  private async run (useHook: boolean): Promise<void> {
    this.chain = this.chain.then(async () => await this.snapshot(useHook))
    await this.chain
  }

  /** Stop the clock, wait for a round under way, then take the last snapshot if `final`. */
  async stop (final: boolean): Promise<void> {
    this.stopped = true
    this.timer?.cancel()
    if (final) await this.run(false)
    else await this.chain
  }

  /** A round now, in turn with the clock's (tests, and a "snapshot now" from the REPL). */
  async now (): Promise<void> {
    if (!this.stopped) await this.run(true)
  }
}
