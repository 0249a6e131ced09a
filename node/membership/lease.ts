/**
 * The Lease contract: a lock with a time to live, held in an engine outside the cluster
 * (an etcd lease, a Kubernetes Lease object), which the `lease` downing strategy uses as
 * its tie-breaker: of the two sides of a split, only the one holding the lease downs the
 * other. Types only; implementations are plugins (plugins/lease-etcd), loaded from
 * image.json `layers.lease`, and driven by lease-holder.ts.
 *
 * What an implementation promises:
 * - At most one holder at a time: `acquire` succeeds only while nobody holds the lease.
 * - A grant lasts `ttlMs` (the engine may round it up; `LeaseGrant.ttlMs` says what it
 *   gave) unless renewed; a holder that cannot renew must assume it lost the lease once
 *   `ttlMs` has passed since its last successful renewal (lease-holder.ts does).
 * - Every grant of the key carries a fencing token greater than every earlier grant's, so
 *   whatever a holder writes elsewhere can be refused once a newer holder exists.
 * - Every call settles within the implementation's own timeout, and rejects with an error
 *   that names the engine endpoint it tried; a rejection never means the lease was taken.
 *
 * Time: a grant's ttl runs on the engine's clock (etcd's, redis's), which is real time
 * whatever clock the node runs on, so an implementation times its calls on real time too
 * (Node's timers): a call must settle within a real fraction of a real ttl. Only the
 * holder (lease-holder.ts) reads the node's clock, and says what that means for a
 * virtual one.
 *
 * @example
 *   const r = await lease.acquire('n1', 10_000)
 *   if (r.kind === 'granted') { ...; await lease.renew(r.grant); ...; await lease.release(r.grant) }
 *   else console.log(`held by ${r.holder}`)
 */
import type { Logger } from '../log'

/** A lease this node holds. */
export interface LeaseGrant {
  /** Where the lease lives in the engine (an etcd key, a Lease object's name). */
  key: string
  /** Who holds it: the node id given to `acquire`. */
  holder: string
  /** Greater for each new grant of `key` than for any before (etcd: the key's create revision). */
  token: number
  /** The engine's own handle on the grant (etcd: the lease id), opaque to the caller. */
  id: string
  /** How long the grant lasts without renewal, as the engine gave it. */
  ttlMs: number
}

export type Acquired =
  | { kind: 'granted', grant: LeaseGrant }
  /** Another holds it; `token` is that holder's fencing token (holder '': it was just released, try again). */
  | { kind: 'taken', key: string, holder: string, token: number }

export interface Lease {
  /** Where the lease lives, for what a person reads ("this node holds /origin/demo/downing"). */
  readonly key: string
  /** How long a grant should last, as configured: what lease-holder.ts asks `acquire` for. */
  readonly ttlMs: number
  /** Take the lease for `holder` if nobody holds it. */
  acquire (holder: string, ttlMs: number): Promise<Acquired>
  /** Who holds the lease now, if anyone (`holder` '' : nobody). */
  read (): Promise<{ holder: string, token: number } | undefined>
  /** Extend `grant` by its ttl; false when it is no longer held (expired, revoked, key taken). */
  renew (grant: LeaseGrant): Promise<boolean>
  /** Give `grant` up at once (others may acquire); a grant already gone is not an error. */
  release (grant: LeaseGrant): Promise<void>
  start (): Promise<void>
  /** Abandons calls in flight; does not release (lease-holder.ts releases first). */
  stop (): Promise<void>
}

/**
 * What the node gives a lease plugin (`lease(init)(components)`). No clock: see "Time" at
 * the top of this file.
 */
export interface LeaseComponents {
  log: Logger
}

/** What the node gives every lease plugin, under its own config (which may override it). */
export interface LeaseInit {
  /** The key of the lease. @default `/origin/<cluster>/downing` */
  key: string
}

export type LeaseFactory = (init: LeaseInit & Record<string, unknown>) => (c: LeaseComponents) => Lease
