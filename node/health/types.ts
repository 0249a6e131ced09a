/**
 * The health layer's contract (node/health): what the assembly and the other layers may
 * rely on. Types only; the implementation is `health()` in index.ts, the defaults and the
 * trade-off each controls are `healthDefaults` in config.ts.
 */
import type { EventEmitter } from 'node:events'
import type { Clock } from '../clock'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { Supervisor } from '../supervisor/types'
import type { HealthSettings } from './config'

/**
 * When the node says it is unhealthy: image.json's `health`, the same options (config.ts
 * documents each with its default and the trade-off it controls).
 */
export type HealthInit = HealthSettings

export interface HealthComponents {
  membership: Pick<Membership, 'setUnhealthy'>
  /** Its 'reconcile' and 'build' events tell whether it keeps up. */
  supervisor: Pick<Supervisor, 'events'>
  log: Logger
  dataDir: string
  /**
   * When checks run and how long a reconcile pass or a data dir probe has taken. The event
   * loop delay stays on real time whatever the clock: it measures the host's loop.
   * @default systemClock
   */
  clock?: Clock
}

export interface HealthEvents {
  /** The node says it is unhealthy and why, or (undefined) healthy again. */
  change: [string | undefined]
}

/** How late this node's event loop ran a timer over the last `eventLoopWindowMs`, ms. */
export interface LoopDelayFigures { p50: number, p99: number, max: number }

export interface Health {
  start (): Promise<void>
  stop (): Promise<void>
  /**
   * The event loop delay the health check judges, for stats to show: one measurement of it
   * per node. Undefined before the first sample or while stopped.
   */
  loopDelay (): LoopDelayFigures | undefined
  /** Why this node says it cannot do its job; undefined while healthy. */
  current (): string | undefined
  readonly events: EventEmitter<HealthEvents>
}
