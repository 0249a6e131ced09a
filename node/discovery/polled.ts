/**
 * A discovery method that looks up on an interval (dns, git): the timer, the 'change'
 * events and the logging around one `lookup()` function. The interval runs on the node's
 * clock; a lookup itself is real I/O (a DNS query, a git fetch) with its own timeouts.
 */
import { EventEmitter } from 'node:events'
import { systemClock, type Clock, type Timer } from '../clock'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import type { Discovery } from './types'
import { samePeers } from './peers'

export class PolledDiscovery implements Discovery {
  readonly events = new EventEmitter()
  private current: string[] = []
  private timer: Timer | undefined
  private running = false
  private inFlight: Promise<void> | undefined
  private lastError = ''

  constructor (
    readonly name: string,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** Returns the addresses found now; throws when the lookup failed (the last list is kept). */
    private readonly lookup: () => Promise<string[]>,
    private readonly clock: Clock = systemClock
  ) {}

  peers (): string[] { return this.current }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    await this.poll()
    if (!this.running) return
    this.timer = this.clock.every(this.intervalMs, () => { void this.poll() }).unref()
  }

  async stop (): Promise<void> {
    this.running = false
    this.timer?.cancel()
    this.timer = undefined
    await this.inFlight
  }

  private async poll (): Promise<void> {
    if (this.inFlight !== undefined) return
    this.inFlight = this.once().finally(() => { this.inFlight = undefined })
    await this.inFlight
  }

  private async once (): Promise<void> {
    let found: string[]
    try {
      found = await this.lookup()
    } catch (err) {
      // Logged once per distinct failure: a name that stays missing does not fill the log.
      const why = errorMessage(err)
      if (why !== this.lastError) this.log.warn(`${this.name}: lookup failed: ${why}; keeping ${this.current.length} known peers, retrying every ${this.intervalMs} ms`)
      this.lastError = why
      return
    }
    this.lastError = ''
    if (!this.running || samePeers(found, this.current)) return
    this.log.info(`${this.name}: ${found.length === 0 ? 'no peers' : found.join(', ')}`)
    this.current = found
    this.events.emit('change', found)
  }
}
