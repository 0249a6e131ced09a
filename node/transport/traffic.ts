/**
 * Bytes of unary calls by method on one transport, requests and answers together, each way
 * (what `cluster.stats()` shows as gossip traffic). Streams are not counted. Kept by the
 * transport's router, not the process: nodes sharing a process (one-process clusters)
 * count their own.
 */
export interface Traffic { sent: number, received: number }

/** At most this many methods are counted: method names come from peers too. */
const MAX_METHODS = 256

export class TrafficBook {
  private readonly byMethod = new Map<string, Traffic>()

  /**
   * The counters of `method`, made on first use; undefined once MAX_METHODS are counted. A
   * served method keeps its counters on its route, so a request costs no lookup here:
   * hashing the name decoded from each frame was a twentieth of the node's RPC time.
   */
  of (method: string): Traffic | undefined {
    let t = this.byMethod.get(method)
    if (t === undefined) {
      if (this.byMethod.size >= MAX_METHODS) return undefined
      t = { sent: 0, received: 0 }
      this.byMethod.set(method, t)
    }
    return t
  }

  count (method: string, way: keyof Traffic, bytes: number): void {
    const t = this.of(method)
    if (t !== undefined) t[way] += bytes
  }

  /** What `method` moved so far (undefined: nothing yet). */
  get (method: string): Readonly<Traffic> | undefined {
    const t = this.byMethod.get(method)
    return t === undefined ? undefined : { ...t }
  }
}
