/**
 * The spec layer's contract (node/desired): what the other layers and the REPL may rely
 * on. Types only; the implementation is `spec()` in index.ts.
 */
import type { EventEmitter } from 'node:events'
import type { Clock } from '../clock'
import type { Hubs } from '../hubs/types'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { Transport } from '../transport/types'
import type { SpecLimits } from './limits'
import type { Applied, Rejection as RejectionLines, SpecSource, SyncResult as SyncLines } from './state'
import type { SpecError } from './types'

export type { Applied, SpecSource } from './state'
export type { SpecError } from './types'

export interface SpecInit {
  source: SpecSource
  /** The node's data dir; the spec store lives in `spec.git` under it. */
  dataDir: string
  /** Time limit for evaluating one `*.ts` spec file (`limits.fileMs`). @default 1000 */
  tsTimeoutMs?: number
  /** What evaluating one commit may cost (time, memory, sizes); see `SpecLimits` for the defaults. @default defaultSpecLimits */
  limits?: Partial<SpecLimits>
}

export interface SpecComponents {
  transport: Transport
  membership: Membership
  hubs: Hubs
  log: Logger
  /** The cluster this node belongs to; a spec naming another is refused. */
  cluster: string
  /**
   * Polls of the remote, retries of a hub, and the times a version was applied or rejected.
   * The TS evaluator's limits stay on real time: they bound a real process. @default systemClock
   */
  clock?: Clock
}

/**
 * A version that was not applied, and why: `errors` one line each (logs, journal), and the
 * same problems as data in `problems` (file, line, column, JSON path, message), which is
 * what crosses the wire (node/protocol/errors.ts makes the REPL's OriginError of it). A
 * problem that is no file's (a bad signature, a commit over its size) has file ''.
 */
export interface Rejection extends RejectionLines { problems: SpecError[] }
/** What one node did when asked to sync; a rejection's problems as data too. */
export interface SyncResult extends SyncLines { problems?: SpecError[] }

/** The name control's views use for it. */
export type StructuredRejection = Rejection

export interface SpecEvents {
  applied: [Applied]
  rejected: [Rejection]
  /** A commit this node did not have: from the remote, or from the hub it follows. */
  fetched: [{ version: string, from: string }]
}

export interface SpecLayer {
  start (): Promise<void>
  stop (): Promise<void>
  current (): Applied | undefined
  lastRejected (): Rejection | undefined
  /** Fetch from the remote now (hubs), or ask the hubs to (others). */
  sync (): Promise<SyncResult[]>
  readonly events: EventEmitter<SpecEvents>
}
