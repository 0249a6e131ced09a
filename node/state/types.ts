/** The state layer's interface, as the supervisor (and control) see it. */
import type { Clock } from '../clock'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { StateMode, StateSpec } from '../desired/types'
import type { Transport } from '../transport/types'
import type { HookEnv } from './hook'

export interface StateInit {
  /** The node's data directory: state lives in `state/` and `state-copies/` under it. */
  dataDir: string
  /** Time a `before` hook may run when the spec gives none. Longer suits a slow save; a hung hook holds a snapshot (or a move) that long. @default 30000 */
  hookTimeoutMs?: number
  /** Time one directory transfer may take before it is abandoned (the previous state stays). Must fit the largest directory over the slowest link. @default 300000 */
  transferTimeoutMs?: number
  /** Time a member has to say what it holds before `prepare` counts it unreachable. Shorter starts sooner; too short misses a loaded node's fresher copy. @default 2000 */
  askTimeoutMs?: number
  /** How long `prepare` waits for the instance to stop on the node whose directory it needs (a graceful move), before it gives up for now. @default 10000 */
  sourceWaitMs?: number
  /** How often `prepare` asks again while it waits for that. @default 250 */
  pollMs?: number
  /** Delay before the generations seen by gossip are written to disk (they change in bursts). @default 500 */
  persistDelayMs?: number
}

export const stateDefaults = { hookTimeoutMs: 30_000, transferTimeoutMs: 300_000, askTimeoutMs: 2000, sourceWaitMs: 10_000, pollMs: 250, persistDelayMs: 500 }
/** The spec's documented defaults for `replicate`. */
export const replicateDefaults = { intervalMs: 30_000, copies: 2 }

export interface StateComponents {
  transport: Pick<Transport, 'handle' | 'peer'>
  membership: Pick<Membership, 'id' | 'table' | 'events'>
  log: Logger
  /**
   * Snapshot intervals, waits and time limits, markers' and snapshots' times. A `before`
   * hook's time limit stays on real time: it bounds a real process. @default systemClock
   */
  clock?: Clock
}

/** What `prepare` decided and did. */
export interface PreparedState {
  /** The instance's directory: give it as ORIGIN_STATE_DIR. */
  dir: string
  /** The generation the instance runs with: publish it as `g` in its instance summary. */
  generation: number
  /** One line in words, for the log and the REPL. */
  note: string
  outcome: 'kept' | 'empty' | 'restored'
  /** Where the contents came from, when restored. */
  from?: { node: string, kind: 'live' | 'copy', generation: number, ageMs: number }
  /** Where a stale directory was moved, when one was. */
  movedAside?: string
  /** The copy made, when restored from a snapshot or another node (bench figures). */
  transfer?: { bytes: number, files: number, ms: number }
}

export interface CopyResult { node: string, ok: boolean, stored?: boolean, detail?: string }

export interface StateStatus {
  instance: string
  /** The node that answers. */
  node: string
  /** The mode it was prepared or attached with here; absent when this node only holds a copy. */
  mode?: StateMode
  /** The instance runs here now. */
  running: boolean
  dir?: string
  generation?: number
  /** The last `prepare` note. */
  note?: string
  /** replicate: the last snapshot taken here and where its copies went. */
  snapshot?: { generation: number, takenAt: number, ageMs: number, bytes: number, files: number, copies: CopyResult[] }
  /** The last failed snapshot (hook failure, disk error), cleared by the next success. */
  lastError?: string
  /** A snapshot this node holds (its own or a copy for another node). */
  held?: { generation: number, ageMs: number, source: string, bytes: number }
}

export interface StateLayer {
  start (): Promise<void>
  stop (): Promise<void>
  /**
   * Before an instance starts on this node (not when its process restarts in place):
   * keep, restore or start its directory empty, and say which. Throws E_NOT_READY while the
   * node holding the newest directory still runs the instance, E_UNREACHABLE when every
   * reachable copy failed to transfer; nothing was changed then, so try again later.
   * `once` (a singleton): also E_NOT_READY while any other node still runs it, whatever
   * directory this node would start with.
   */
  prepare (instance: string, spec: StateSpec | undefined, o?: { once?: boolean }): Promise<PreparedState>
  /** The instance runs here: serve its directory after its hook, and snapshot it if its mode is `replicate`. */
  attach (instance: string, spec: StateSpec | undefined, hook: HookEnv): void
  /** The instance's process stopped: stop snapshots; `graceful` takes a last one (no hook needed, nothing writes). */
  detach (instance: string, o: { graceful: boolean }): Promise<void>
  /** A snapshot round now (replicate, instance running here), in turn with the clock's; for the REPL, tests and benchmarks. */
  snapshotNow (instance: string): Promise<void>
  /**
   * The instance stopped here for good because this node is leaving: copy its directory to
   * `node`, the member that takes the instance next, before this node goes (migrate on a
   * node's graceful stop). Resolves with what the copy did; never throws.
   */
  handOver (instance: string, spec: StateSpec, node: string): Promise<CopyResult>
  /** The generation the instance runs with here (set by `prepare`). */
  generation (instance: string): number | undefined
  status (instance: string): Promise<StateStatus | undefined>
  /** Every instance this node has state for: running, prepared, or held as a copy. */
  statuses (): Promise<StateStatus[]>
}
