/**
 * Pure: the keys each instance holds "recently", for `admission.maxKeys`. A key is held by
 * an instance from a request with it until `idleMs` pass without one (the time of each
 * request is an argument: no clock here). An instance holding `max` keys refuses a new key;
 * a key it holds is always let in (and refreshed). Memory per instance is at most `max` keys.
 *
 * @example
 *   const k = new RecentKeys(60_000)
 *   k.admit('web-1', 'alpha', 100, Date.now())   // true: held now
 */
export class RecentKeys {
  /** By instance: key -> last request, oldest first (a refreshed key moves to the end). */
  private readonly byInstance = new Map<string, Map<string, number>>()

  constructor (private readonly idleMs: number) {}

  /** Whether a request with `key` may go to `instance` at `now`; when yes, the key is held (or refreshed). */
  admit (instance: string, key: string, max: number, now: number): boolean {
    let keys = this.byInstance.get(instance)
    if (keys === undefined) { keys = new Map(); this.byInstance.set(instance, keys) }
    if (keys.has(key)) { keys.delete(key); keys.set(key, now); return true }
    this.expire(keys, now)
    if (keys.size >= max) return false
    keys.set(key, now)
    return true
  }

  /** How many keys `instance` holds at `now`. */
  held (instance: string, now: number): number {
    const keys = this.byInstance.get(instance)
    if (keys === undefined) return 0
    this.expire(keys, now)
    return keys.size
  }

  /** An instance no longer ready: its keys go with it. */
  forget (instance: string): void { this.byInstance.delete(instance) }

  instances (): string[] { return [...this.byInstance.keys()] }

  private expire (keys: Map<string, number>, now: number): void {
    for (const [k, t] of keys) {
      if (now - t < this.idleMs) break
      keys.delete(k)
    }
  }
}
