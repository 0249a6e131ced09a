/**
 * membership: join through seeds (or originate a cluster when none answers), gossip the
 * member table, detect failures, leave gracefully.
 *
 * SWIM with Lifeguard's refinements (gossip.ts): every period a node probes one member
 * (indirectly through others when the ack is late), and a member that answers nobody is
 * suspect, then dead once its suspicion times out (`suspectAfterMs` with confirmations,
 * `deadAfterMs` alone); a live member that sees itself suspected refutes it with a higher
 * incarnation. Changes ride on these messages and on `fanout` more pings a period while
 * there are changes to spread; a full table exchange (push-pull) repairs now and then. Seeds that are not live members are
 * retried, which is how two clusters that both originated find each other and merge.
 *
 * Input is checked for sense, not only shape (any holder of a node certificate can send
 * anything the schema allows; `hear.ts` has the rules): a member this node has only
 * heard of is contacted before it enters the table (`table()` holds confirmed members
 * only, so ghosts never count in quorums, hosting or hub ranking); what third parties
 * may say about a member is bounded so it can always refute; tables and frames have size
 * limits and errors stay short. A node that was paused or stalled does not judge others
 * from its stale view (`detector.ts`). A dead member whose address a new member id now
 * answers at (a node restarted with a wiped data dir) becomes `left`.
 *
 * Downing (`downing.ts`): once the membership has been stable for `afterMs` with members
 * dead, the side the strategy picks (keep-majority by default) makes them `left`, so a
 * cluster that loses machines by crashes shrinks with no command; the other side of a
 * partition downs nobody. A downed member that comes back joins as a new incarnation.
 *
 * @example
 *   const m = membership({ seeds: ['10.0.0.4:7400'] })({ transport, log, self })
 *   m.events.on('change', (table) => ...)
 *   await m.start()            // joined or originated
 *   await m.stop()             // says `left` to everyone, then stops
 */
import type { EventEmitter } from 'node:events'
import type { Clock } from '../clock'
import type { Logger } from '../log'
import type { Transport } from '../transport'
import type { MembershipInit } from './config'
import type { Scheduler } from './scheduler'
import { GossipMembership } from './gossip'
import type { DowningPolicy } from './downing'
import type { DowningLease } from './lease-holder'
import type { Characteristics, InstanceSummary, MemberTable, MembershipEvents } from './types'

export type { Member, MemberTable, MemberStatus, Characteristics, InstanceSummary, MembershipEvents } from './types'

export { membershipDefaults, type MembershipInit } from './config'
export { realScheduler, type Scheduler, type Timer } from './scheduler'
export { fenceWindowMs, type FenceSettings } from './fence'
export { decideDowning, defaultDowning, downingStrategies, type DowningPolicy, type DowningStrategy, type DowningDecision, type LeaseFact } from './downing'
export { LeaseHolder, type DowningLease } from './lease-holder'
export type { Lease, LeaseGrant, Acquired, LeaseComponents, LeaseInit, LeaseFactory } from './lease'

export interface MembershipComponents {
  transport: Transport
  log: Logger
  /** This node. `address` is what others dial; default: the transport's listen address once started. */
  self: { id: string, address?: string, characteristics: Characteristics }
  /**
   * The node's time: gossip rounds, probes, suspicion and downing timers; handed on to the
   * lease holder (`lease`), which reads it too. @default systemClock
   */
  clock?: Clock
  /** The same as `clock` under its older name (the simulation in sim/ passes it); `clock` wins when both are set. */
  scheduler?: Scheduler
  /** Only the time, on real timers (tests); not read when `clock` or `scheduler` is set. @default Date.now */
  now?: () => number
  /** Randomness (probe order, peer choice); seeded in the simulation. @default Math.random */
  random?: () => number
  /** The lease the `lease` downing strategy needs (lease-holder.ts); absent: that strategy downs nobody. */
  lease?: DowningLease
}

export interface Membership {
  start (): Promise<void>
  stop (): Promise<void>
  readonly id: string
  /** The address others dial, once started. */
  readonly address: string
  /**
   * The member table: this node and the members it has met directly (it called them, or
   * they called it from the host it knows them at). Members only heard of from others are
   * not in it, so they count nowhere (quorum, hosting, hubs) until met.
   */
  table (): MemberTable
  /** Set this node's hub flag (the hub layer's hysteresis reads it). */
  setHubClaim (hub: boolean): void
  /** Say which spec version this node runs. */
  setSpec (version: string): void
  /** Say which service instances this node runs, and in what state. */
  setInstances (instances: Record<string, InstanceSummary>): void
  /**
   * Say this node cannot do its job, and why (node/health), or with no reason that it can
   * again. Gossiped in its characteristics; the scheduler places nothing new on it.
   */
  setUnhealthy (reason?: string): void
  /** Say an operator drained this node (it hosts no instances), or undrained it. Gossiped in its characteristics. */
  setDrained (drained: boolean): void
  /**
   * Members of the table this node exchanged a message with (either way) within the last
   * `withinMs`. Each period a node probes one member and is probed by one on average; it
   * pings `fanout` more while it has news to spread, and 2 × `fanout` while it is told to
   * keep in touch (`keepInTouch`): then some 8 members a period, so a window of a few
   * periods holds a majority of a few dozen members.
   */
  reachable (withinMs: number): Set<string>
  /**
   * A caller needs `reachable` to hold a majority for the next `forMs` (the supervisor,
   * while a singleton runs here or waits to): this node then pings enough members itself,
   * where an idle cluster would be quiet. Optional: a membership without it is taken to be
   * in touch as it is.
   */
  keepInTouch? (forMs: number): void
  /**
   * How far back `reachable` must look for this node to be in touch with a majority
   * whenever it is on the majority side, and so the least time a suspect gets (fence.ts):
   * `suspectAfterMs` up to some 20 members, growing with the cluster. The supervisor's
   * singleton quorum reads it instead of a fixed fence time. Optional while the gossip
   * membership does not implement it yet: fall back to `suspectAfterMs`.
   */
  fenceWindowMs? (): number
  /**
   * An operator says a dead member is gone for good: it becomes `left` everywhere (so it
   * no longer counts against the singleton majority). If it ever starts again, its new
   * incarnation makes it alive.
   */
  forget (id: string): void
  /**
   * How dead members are removed with no operator command (`cluster.json` `downing`);
   * fields left out take their defaults (see downing.ts).
   */
  setDowning (policy?: Partial<DowningPolicy>): void
  /** The table's changes, downing decisions and holds (MembershipEvents, types.ts). */
  readonly events: EventEmitter<MembershipEvents>
}

export function membership (init: MembershipInit) {
  return (components: MembershipComponents): Membership => {
    const clock = components.clock ?? components.scheduler
    return new GossipMembership(init, clock === undefined ? components : { ...components, scheduler: clock })
  }
}
