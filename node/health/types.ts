/**
 * The health layer's contract (node/health): what the assembly and the other layers may
 * rely on. Types only; the implementation is `health()` in index.ts, the defaults and the
 * trade-off each controls are `healthDefaults` in config.ts.
 */
import type { EventEmitter } from 'node:events'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { Supervisor } from '../supervisor/types'
import type { HealthSettings } from './config'

/** When the node says it is unhealthy; config.ts says what each bound trades off. */
export interface HealthInit {
  /** Time between checks (each reads the loop histogram, calls statfs, writes and syncs one small file). @default 1000 */
  checkIntervalMs?: number
  /** Checks in a row a cause must hold before the node says it is unhealthy. @default 3 */
  failChecks?: number
  /** Checks in a row with no cause before the node says it is healthy again. @default 5 */
  recoverChecks?: number
  /** Most event loop delay (p99 over `eventLoopWindowMs`, in ms) of a healthy node. @default 1000 */
  eventLoopDelayMs?: number
  /** The window the event loop delay's p99 is taken over. @default 5000 */
  eventLoopWindowMs?: number
  /** Least free space in the data dir (MiB) of a healthy node. @default 256 */
  minFreeMb?: number
  /** Longest a reconcile pass may run, builds not counted, before the supervisor counts as stuck. @default 60000 */
  reconcileStallMs?: number
  /** Longest the data dir probe (write, fsync, remove a small file) may take before the disk counts as hung. @default 10000 */
  probeTimeoutMs?: number
}

export interface HealthComponents {
  membership: Pick<Membership, 'setUnhealthy'>
  /** Its 'reconcile' and 'build' events tell whether it keeps up. */
  supervisor: Pick<Supervisor, 'events'>
  log: Logger
  dataDir: string
  /** Clock, for tests. @default Date.now */
  now?: () => number
}

export interface HealthEvents {
  /** The node says it is unhealthy and why, or (undefined) healthy again. */
  change: [string | undefined]
}

export interface Health {
  start (): Promise<void>
  stop (): Promise<void>
  /** Why this node says it cannot do its job; undefined while healthy. */
  current (): string | undefined
  readonly events: EventEmitter<HealthEvents>
}

/**
 * The contract's options are image.json's `health` (HealthSettings, which its schema
 * validates): tsc fails here when one names an option, or a type, the other does not.
 */
export type HealthInitIsHealthSettings = Holds<Same<Required<HealthInit>, Required<HealthSettings>>>
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
type Holds<T extends true> = T
