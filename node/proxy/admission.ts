/**
 * Admission to one instance: `maxInFlight` requests at once and `maxKeys` keys held. It is
 * counted on the node the instance runs on, which sees every request to it whatever node
 * took it in (another node's published port sends its HTTP requests there over a stream),
 * so a limit holds for the instance across the cluster, not per proxying node.
 */
import type { AdmissionSpec } from '../desired/types'
import { RecentKeys } from './recent-keys'

export type Admitted = { release: () => void } | { refuse: { status: number, body: string } }

export class Admission {
  private readonly inFlight = new Map<string, number>()
  private readonly keys: RecentKeys
  /** Refusals at either limit, by service, since this proxy was made: what `cluster.stats()` shows. */
  private readonly refused = new Map<string, number>()

  constructor (keyIdleMs: number) {
    this.keys = new RecentKeys(keyIdleMs)
  }

  /**
   * A request to `instance` of `service` (with `key` when it routes by key): let in, counted
   * until `release` (call it once the answer is done), or refused in words (503).
   */
  admit (service: string, instance: string, limits: AdmissionSpec | undefined, key: string | undefined, now: number): Admitted {
    const max = limits?.maxInFlight
    const inFlight = this.inFlight.get(instance) ?? 0
    if (max !== undefined && inFlight >= max) {
      this.countRefusal(service)
      return { refuse: { status: 503, body: `${service} is at its limit of ${max} request${max === 1 ? '' : 's'} in flight on ${instance}; come back later` } }
    }
    const maxKeys = limits?.maxKeys
    if (maxKeys !== undefined && key !== undefined && !this.keys.admit(instance, key, maxKeys, now)) {
      this.countRefusal(service)
      return { refuse: { status: 503, body: `${service} is at its limit of ${maxKeys} key${maxKeys === 1 ? '' : 's'} on ${instance}; come back later` } }
    }
    // Counted before the request goes on, so requests arriving together cannot all slip under the limit.
    this.inFlight.set(instance, inFlight + 1)
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        const n = (this.inFlight.get(instance) ?? 1) - 1
        if (n <= 0) this.inFlight.delete(instance); else this.inFlight.set(instance, n)
      }
    }
  }

  /** Requests refused at the limits, by service (empty when none). */
  refusals (): Record<string, number> { return Object.fromEntries(this.refused) }

  private countRefusal (service: string): void {
    this.refused.set(service, (this.refused.get(service) ?? 0) + 1)
  }

  /** Instances no longer ready lose the keys they held. */
  keepOnly (ready: ReadonlySet<string>): void {
    for (const instance of this.keys.instances()) if (!ready.has(instance)) this.keys.forget(instance)
  }
}
