/**
 * Bytes of unary calls by method in this process, requests and answers together, each way
 * (what `cluster.stats()` shows as gossip traffic). Streams are not counted.
 */
export const trafficByMethod = new Map<string, { sent: number, received: number }>()

export function countTraffic (method: string, way: 'sent' | 'received', bytes: number): void {
  let t = trafficByMethod.get(method)
  if (t === undefined) {
    if (trafficByMethod.size >= 256) return // method names come from peers too: bounded
    t = { sent: 0, received: 0 }
    trafficByMethod.set(method, t)
  }
  t[way] += bytes
}
