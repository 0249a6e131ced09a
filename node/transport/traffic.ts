/**
 * Bytes of unary calls by method in this process, requests and answers together, each way
 * (what `cluster.stats()` shows as gossip traffic). Streams are not counted.
 */
export interface Traffic { sent: number, received: number }

export const trafficByMethod = new Map<string, Traffic>()

/**
 * The counters of `method`, made on first use; undefined once 256 methods are counted
 * (method names come from peers too). A served method keeps its counters on its route,
 * so a request costs no lookup here: hashing the name decoded from each frame was a
 * twentieth of the node's RPC time.
 */
export function trafficOf (method: string): Traffic | undefined {
  let t = trafficByMethod.get(method)
  if (t === undefined) {
    if (trafficByMethod.size >= 256) return undefined
    t = { sent: 0, received: 0 }
    trafficByMethod.set(method, t)
  }
  return t
}

export function countTraffic (method: string, way: keyof Traffic, bytes: number): void {
  const t = trafficOf(method)
  if (t !== undefined) t[way] += bytes
}
