/**
 * The async half of the `lease` downing strategy (the pure half is in downing.ts): takes
 * the lease (lease.ts, a plugin such as plugins/lease-etcd) when the membership needs it,
 * renews it, gives it up, and says each round what it knows (`LeaseFact`).
 *
 * When it holds on: from the moment `needsLease` says this node should down its dead
 * until every member it downed is back (a new incarnation, alive: the partition healed),
 * or it stops. Letting go as soon as the dead are downed would be unsafe: across a
 * partition the other side still sees this node dead, would take the lease next, and down
 * this side in turn, and both would run the singletons. A member that crashed for good
 * never comes back, so its downer keeps renewing (a request every ttl/3) until it stops.
 *
 * What counts as held: a grant taken at least `settleMs` ago whose last renewal was sent
 * less than its ttl ago. A renewal that fails (etcd unreachable) is retried each round;
 * once the ttl has run out this node no longer holds the lease for the downing decision,
 * whatever etcd says later.
 *
 * Who else holds it: while this node sees members dead or downed it reads the lease every
 * `retryMs`, and says who holds it (`fact().holder`). The supervisor runs no singleton
 * while the holder is one this node does not see alive: the other side won the lease (it
 * may have taken it after this side's holder crashed, and down this side next). The
 * `settleMs` a new holder waits before it downs anyone is the time the other side needs
 * to read that (one `retryMs`, one call), so it has stopped its singletons before the
 * winner's side starts them.
 *
 * Driven by the membership's round (`round`, no timer of its own); one call to the lease
 * is in flight at a time, so a slow engine slows the lease, never the gossip.
 *
 * Time: the holder reads the node's clock, as the membership does. The engine's ttl runs
 * on the engine's own clock, which is real time whatever the node's clock is: a virtual
 * clock that runs faster than real time only makes the holder give up its grant sooner
 * (safe); one that runs slower, or stops, lets it count a grant etcd has already expired,
 * so a node that uses a lease engine keeps its virtual time at least as fast as real time.
 * On the system clock the holder reads the monotonic clock instead (performance.now): a
 * wall clock stepped back (NTP) must not stretch a grant past its ttl.
 */
import { systemClock, type Clock } from '../clock'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { needsLease, type DowningPolicy, type DowningView, type LeaseFact } from './downing'
import type { Lease, LeaseGrant } from './lease'
import type { MemberTable } from './types'

/** What the membership asks of the lease each round (gossip.ts's downing step). */
export interface DowningLease {
  /** The lease as known now; also starts what this round's view needs (acquire, renew, release). */
  round (view: DowningView, policy: DowningPolicy): LeaseFact
  /** This node downed `ids` under the lease: hold it until they are back. */
  downed (ids: string[]): void
}

export interface LeaseHolderComponents {
  lease: Lease
  /** This node's id: the holder written in the lease. */
  holder: string
  log: Logger
  /** The node's clock (see the top of this file): the membership's, whose rounds drive the holder. @default the monotonic clock */
  clock?: Clock
  /** Only the time, for tests with no Clock; ignored when `clock` is given. @default performance.now */
  now?: () => number
  /** How long a new grant waits before it counts (see the top of this file). @default 2 × retryMs */
  settleMs?: number
}

export class LeaseHolder implements DowningLease {
  private grant: LeaseGrant | undefined
  /** The grant counts as held until then (when its last renewal was sent, plus its ttl). */
  private validUntil = 0
  private renewAt = 0
  private nextTryAt = 0
  private taken: { holder: string, token: number } | undefined
  private acquiredAt = 0
  private nextReadAt = 0
  private problem: string | undefined
  private readonly keepFor = new Set<string>()
  private inFlight: Promise<void> | undefined
  private running = false
  private readonly now: () => number

  constructor (private readonly c: LeaseHolderComponents) {
    const clock = c.clock
    this.now = clock === undefined
      ? c.now ?? (() => performance.now())
      : clock === systemClock ? () => performance.now() : () => clock.now()
  }

  get key (): string { return this.c.lease.key }

  async start (): Promise<void> {
    await this.c.lease.start()
    this.running = true
  }

  /** Releases the lease if held (so the others need not wait out its ttl), then stops the plugin. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    await this.inFlight
    if (this.grant !== undefined) await this.release('this node stops')
    await this.c.lease.stop()
  }

  round (view: DowningView, policy: DowningPolicy): LeaseFact {
    const now = this.now()
    if (this.running && this.inFlight === undefined) {
      const op = this.next(view, policy, now)
      if (op !== undefined) this.track(op)
    }
    return this.fact(now)
  }

  /** The call to the lease this round needs, if any (one at a time). */
  private next (view: DowningView, policy: DowningPolicy, now: number): Promise<void> | undefined {
    const need = needsLease(view, policy)
    if (this.grant !== undefined) {
      if (!need && (policy.strategy !== 'lease' || this.allBack(view.table))) {
        return this.release(policy.strategy !== 'lease' ? `the strategy is ${policy.strategy} now` : this.keepFor.size === 0 ? 'no dead member to down any more' : `${[...this.keepFor].join(', ')} back`)
      }
      return now >= this.renewAt ? this.renew(this.grant) : undefined
    }
    if (need) return now >= this.nextTryAt ? this.acquire() : undefined
    const watching = policy.strategy === 'lease' && Object.values(view.table).some((m) => m.status === 'dead' || m.status === 'left')
    if (!watching) { this.taken = undefined; return undefined }
    return now >= this.nextReadAt ? this.read() : undefined
  }

  downed (ids: string[]): void {
    for (const id of ids) this.keepFor.add(id)
  }

  fact (now = this.now()): LeaseFact {
    const key = this.c.lease.key
    if (this.grant !== undefined && now < this.validUntil && now < this.acquiredAt + this.settleMs) {
      return { held: false, key, problem: `acquired with token ${this.grant.token}; it counts after ${(this.settleMs / 1000).toFixed(1)} s, once the other side can have seen it taken` }
    }
    if (this.grant !== undefined && now < this.validUntil) return { held: true, key, token: this.grant.token }
    if (this.grant !== undefined) return { held: false, key, problem: `not renewed for its ttl of ${this.grant.ttlMs} ms${this.problem === undefined ? '' : `: ${this.problem}`}` }
    if (this.taken !== undefined) return { held: false, key, holder: this.taken.holder, token: this.taken.token }
    return { held: false, key, ...(this.problem === undefined ? {} : { problem: this.problem }) }
  }

  private track (p: Promise<void>): void {
    this.inFlight = p.finally(() => { this.inFlight = undefined })
  }

  /** Members downed under the lease are all back in the table, alive (a new incarnation). */
  private allBack (table: MemberTable): boolean {
    return [...this.keepFor].every((id) => table[id]?.status === 'alive')
  }

  /** Between tries while another holds the lease or the engine fails: a third of the ttl, 0.5 to 2 s. */
  private get retryMs (): number {
    return Math.min(2000, Math.max(500, this.c.lease.ttlMs / 3))
  }

  private get settleMs (): number {
    return this.c.settleMs ?? 2 * this.retryMs
  }

  private async read (): Promise<void> {
    try {
      const r = await this.c.lease.read()
      this.setProblem(undefined)
      this.learn(r)
    } catch (err) {
      this.setProblem(errorMessage(err))
    }
    this.nextReadAt = this.now() + this.retryMs
  }

  /** Who holds the lease, as read or told by a failed acquire: said once per holder and token. */
  private learn (r: { holder: string, token: number } | undefined): void {
    const next = r === undefined || r.holder === '' ? undefined : r
    if (next !== undefined && (this.taken?.holder !== next.holder || this.taken.token !== next.token)) {
      this.c.log.info(`lease ${this.c.lease.key} held by ${next.holder} (token ${next.token}): this side does not down`)
    }
    this.taken = next
  }

  private async acquire (): Promise<void> {
    const sent = this.now()
    try {
      const r = await this.c.lease.acquire(this.c.holder, this.c.lease.ttlMs)
      this.setProblem(undefined)
      if (r.kind === 'taken') {
        this.learn(r)
        this.nextTryAt = this.now() + this.retryMs
        return
      }
      this.taken = undefined
      this.grant = r.grant
      this.acquiredAt = sent
      this.validUntil = sent + r.grant.ttlMs
      this.renewAt = sent + r.grant.ttlMs / 3
      this.keepFor.clear()
      this.c.log.info(`lease ${r.grant.key} acquired, token ${r.grant.token} (ttl ${r.grant.ttlMs} ms); downing in ${(this.settleMs / 1000).toFixed(1)} s, once the other side can have seen it taken`)
    } catch (err) {
      this.setProblem(errorMessage(err))
      this.nextTryAt = this.now() + this.retryMs
    }
  }

  private async renew (grant: LeaseGrant): Promise<void> {
    const sent = this.now()
    try {
      if (await this.c.lease.renew(grant)) {
        this.setProblem(undefined)
        this.validUntil = sent + grant.ttlMs
        this.renewAt = sent + grant.ttlMs / 3
        return
      }
      this.c.log.warn(`lease ${grant.key} lost (token ${grant.token}): it expired or another took it`)
      this.grant = undefined
    } catch (err) {
      this.setProblem(`renewing: ${errorMessage(err)}`)
      this.renewAt = this.now() + Math.min(this.retryMs, grant.ttlMs / 6)
    }
  }

  private async release (why: string): Promise<void> {
    const grant = this.grant
    if (grant === undefined) return
    this.grant = undefined
    this.keepFor.clear()
    try {
      await this.c.lease.release(grant)
      this.c.log.info(`lease ${grant.key} released (token ${grant.token}): ${why}`)
    } catch (err) {
      this.c.log.warn(`lease ${grant.key} not released (${errorMessage(err)}): it expires by itself within ${grant.ttlMs} ms`)
    }
  }

  /** Logs a problem with the engine once, not every round. */
  private setProblem (problem: string | undefined): void {
    if (problem !== undefined && problem !== this.problem) this.c.log.warn(`lease ${this.c.lease.key}: ${problem}`)
    else if (problem === undefined && this.problem !== undefined) this.c.log.info(`lease ${this.c.lease.key}: the engine answers again`)
    this.problem = problem
  }
}
