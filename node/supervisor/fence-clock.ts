/**
 * The fence: how the supervisor knows whether this node may run singletons. It reads the
 * quorum (a majority in touch within the fence window, or the downing lease) for each
 * reconcile pass and remembers since when it has held, looks at it again on a clock while a
 * singleton is held or awaited (losing touch changes no member status at first), and runs
 * the watchdog that kills the singletons of a node that stops running (watchdog.ts).
 *
 * The periodic look runs on the supervisor's clock; the watchdog on the host's, since it
 * races a real process's `read -t`.
 */
import type { Clock, Timer } from '../clock'
import type { Logger } from '../log'
import type { LeaseFact, Membership, MemberTable } from '../membership'
import { singletonQuorum } from './rolling'
import { Watchdog } from './watchdog'

export interface FenceInit {
  /** A node out of touch with a majority this long gives its singletons up (SupervisorInit.fenceAfterMs). */
  fenceAfterMs: number
  clock: Clock
  membership: Pick<Membership, 'id' | 'reachable' | 'fenceWindowMs' | 'keepInTouch'>
  lease?: { fact (): LeaseFact }
  log: Logger
  /** Asked on each tick of the clock: should the quorum be looked at again now? */
  watching: () => boolean
  /** Look at it again (a reconcile pass). */
  tick: () => void
  /** The watchdog may have killed these while the node did not run: give them up. */
  lapsed: (ids: string[], why: string) => void
}

/** The quorum as one pass sees it. */
export interface QuorumView {
  /** Members this node exchanged messages with within the window. */
  inTouch: ReadonlySet<string>
  quorum: { ok: boolean, reason: string }
  /** The window: it grows with the cluster (membership/fence.ts); past ~20 members a fixed one holds too few of them. */
  fenceMs: number
}

export class FenceClock {
  /** Since when the quorum has held without a break (plan.ts keeps it; a lapse clears it). */
  since?: number
  private timer?: Timer
  private dog?: Watchdog

  constructor (private readonly o: FenceInit) {}

  /** Fences the singletons of this node (undefined until started). */
  get watchdog (): Watchdog | undefined { return this.dog }

  async start (): Promise<void> {
    this.dog = new Watchdog({
      timeoutMs: this.o.fenceAfterMs,
      log: this.o.log,
      onLapse: (ids, why) => {
        this.since = undefined // as back from a partition: views settle before a singleton starts again
        this.o.lapsed(ids, why)
      }
    })
    await this.dog.start()
    this.timer = this.o.clock.every(Math.max(50, Math.floor(this.o.fenceAfterMs / 5)), () => {
      if (!this.o.watching()) return
      this.keepInTouch()
      this.o.tick()
    })
  }

  /**
   * An idle membership pings only the member it probes each period; while a singleton runs
   * here or waits to, this node must be in touch with a majority within the window by
   * itself, so it asks for more (a few windows ahead: the clock looks again well before).
   */
  private keepInTouch (): void {
    this.o.membership.keepInTouch?.(3 * (this.o.membership.fenceWindowMs?.() ?? this.o.fenceAfterMs))
  }

  /** Stops the periodic look; the watchdog goes last (stopDog), once the instances it fences have stopped. */
  stopClock (): void {
    this.timer?.cancel()
  }

  async stopDog (): Promise<void> {
    await this.dog?.stop()
  }

  /** The quorum now, by majority in touch or, with the `lease` downing strategy, by who holds the lease. */
  view (table: MemberTable, byLease: boolean): QuorumView {
    const self = this.o.membership.id
    const fenceMs = this.o.membership.fenceWindowMs?.() ?? this.o.fenceAfterMs
    if (this.o.watching()) this.keepInTouch()
    const inTouch = this.o.membership.reachable(fenceMs)
    const lease = byLease ? this.o.lease?.fact() : undefined
    const quorum = singletonQuorum(table, self, inTouch, !byLease, lease !== undefined && !lease.held ? lease.holder : undefined)
    return { inTouch, quorum, fenceMs }
  }
}
