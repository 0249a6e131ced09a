/**
 * health: a node notices when it cannot do its job — its event loop delayed beyond a
 * bound, its data dir not writable or nearly full, its supervisor not finishing a
 * reconcile — and says so in its member entry (`characteristics.unhealthy`, the reason in
 * words), so the scheduler on every node moves its singletons away and places nothing new
 * on it, and the REPL and the journal say why. It says it is healthy again by itself once
 * the cause has been gone for a few checks (hysteresis both ways: decide.ts).
 *
 * @example
 *   const h = health({ minFreeMb: 512 })({ membership, supervisor, log, dataDir })
 *   await h.start()
 *   h.current()   // undefined, or 'data dir has 80 MiB free (floor 512 MiB)'
 */
import { EventEmitter } from 'node:events'
import { systemClock, type Clock, type Timer } from '../clock'
import { healthDefaults } from './config'
import { causes, healthyState, step, type HealthState } from './decide'
import { DataDirProbe, LoopDelay, ReconcileWatch } from './measure'
import type { Health, HealthComponents, HealthEvents, HealthInit, LoopDelayFigures } from './types'

export { healthDefaults, healthSchema, type HealthSettings } from './config'
export { causes, step, healthyState, type Cause, type HealthState, type Measures } from './decide'
export type { Health, HealthComponents, HealthEvents, HealthInit } from './types'

export function health (init: HealthInit = {}) {
  return (c: HealthComponents): Health => new HealthMonitor({ ...healthDefaults, ...init }, c)
}

class HealthMonitor implements Health {
  readonly events = new EventEmitter<HealthEvents>()
  private readonly clock: Clock
  private readonly now: () => number
  private readonly loop: LoopDelay
  private readonly probe: DataDirProbe
  private readonly watch = new ReconcileWatch()
  private state: HealthState = healthyState
  private timer?: Timer
  private readonly onReconcile = (what: 'started' | 'ended'): void => { this.watch.reconcile(what, this.now()) }
  private readonly onBuild = (b: { what: 'started' | 'succeeded' | 'failed' }): void => { this.watch.build(b.what, this.now()) }

  constructor (private readonly o: Required<HealthInit>, private readonly c: HealthComponents) {
    this.clock = c.clock ?? systemClock
    this.now = () => this.clock.now()
    // A hanging write is timed on real time: it is the host's disk, which a virtual clock run
    // faster than real time would otherwise find slow.
    this.probe = new DataDirProbe(c.dataDir, () => performance.now())
    this.loop = new LoopDelay(o.eventLoopWindowMs)
  }

  current (): string | undefined { return this.state.reason }

  loopDelay (): LoopDelayFigures | undefined { return this.loop.figures() }

  async start (): Promise<void> {
    if (this.timer !== undefined) return
    this.loop.start()
    this.c.supervisor.events.on('reconcile', this.onReconcile)
    this.c.supervisor.events.on('build', this.onBuild)
    this.timer = this.clock.every(this.o.checkIntervalMs, () => this.check())
  }

  async stop (): Promise<void> {
    if (this.timer === undefined) return
    this.timer.cancel()
    this.timer = undefined
    this.loop.stop()
    this.c.supervisor.events.off('reconcile', this.onReconcile)
    this.c.supervisor.events.off('build', this.onBuild)
  }

  private check (): void {
    const now = this.now()
    const found = causes({ eventLoopDelayMs: this.loop.p99(), ...this.probe.check(), reconcilingMs: this.watch.reconcilingMs(now) }, this.o, this.c.dataDir)
    const was = this.state.reason
    this.state = step(this.state, found, this.o)
    const is = this.state.reason
    // Said every check (a no-op when unchanged), so a membership that was not running yet
    // hears it too; and said before anything is logged, which on a full disk may fail.
    this.c.membership.setUnhealthy(is)
    if (is !== was) {
      if (is === undefined) this.c.log.info(`healthy again (was: ${was ?? '?'}): this node takes work again`)
      else this.c.log.warn(`unhealthy: ${is}; its singletons move to healthy nodes and nothing new is placed here until it recovers`)
      this.events.emit('change', is)
    } else if (found.length > 0 && is === undefined) {
      this.c.log.debug(`${found.map((f) => f.text).join('; ')} (${this.state.failing} of ${this.o.failChecks} checks before this node says it is unhealthy)`)
    }
  }
}
