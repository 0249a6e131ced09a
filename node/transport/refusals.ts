/**
 * Refused connections, logged as a counted summary rather than a line each: a client that
 * retries, or a flood, must not fill the disk with identical warnings. The first refusal of
 * each kind is logged in full; the rest are counted, and one line per interval says how
 * many there were while they go on:
 *
 *   refused a connection from 10.0.0.9:51234: no client certificate (origin requires mutual TLS)
 *   refused 4,999 more connections in the last 10 s: 4,990 no certificate, 9 another CA
 *
 * After an interval with no refusal at all, the next one of any kind is logged in full again.
 */
import { systemClock, type Clock, type Timer } from '../clock'
import type { Logger } from '../log'

/**
 * `12,345`: counts with thousands separators. Not Intl.NumberFormat, which maps ~5 MiB of
 * ICU data into every node for the sake of a log line.
 */
function count (n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

export class RefusalLog {
  /** Kinds logged in full since the last quiet interval. */
  private readonly shown = new Set<string>()
  private counts = new Map<string, number>()
  private suppressed = 0
  private seenThisInterval = false
  private timer?: Timer

  constructor (private readonly log: Logger, private readonly intervalMs: number, private readonly clock: Clock = systemClock) {}

  /**
   * One refused connection: `kind` groups it in the summary ("no certificate"), `line` is
   * what is logged when it is the first of its kind ("refused a connection from ...: ...").
   */
  refused (kind: string, line: string): void {
    this.seenThisInterval = true
    this.schedule()
    if (!this.shown.has(kind)) {
      this.shown.add(kind)
      this.log.warn(line)
      return
    }
    this.suppressed++
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1)
  }

  /** Whether refusals are being counted (false after a quiet interval: the next is logged in full). */
  get active (): boolean { return this.timer !== undefined }

  /** Log what is counted now (at stop, so nothing counted is lost). */
  flush (): void {
    if (this.suppressed > 0) {
      const kinds = [...this.counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${count(n)} ${k}`)
      const s = this.suppressed === 1 ? '' : 's'
      this.log.warn(`refused ${count(this.suppressed)} more connection${s} in the last ${this.intervalMs / 1000} s: ${kinds.join(', ')}`)
    }
    this.suppressed = 0
    this.counts = new Map()
  }

  stop (): void {
    this.timer?.cancel()
    this.timer = undefined
    this.flush()
    this.shown.clear()
  }

  private schedule (): void {
    if (this.timer !== undefined) return
    this.timer = this.clock.after(this.intervalMs, () => this.tick()).unref()
  }

  private tick (): void {
    this.timer = undefined
    this.flush()
    if (!this.seenThisInterval) { this.shown.clear(); return } // a quiet interval: start over
    this.seenThisInterval = false
    this.timer = this.clock.after(this.intervalMs, () => this.tick()).unref()
  }
}
