/**
 * Pure: keyed routing. A request's key (a header, or a segment of its path) picks one
 * instance by rendezvous hashing over the ready instances: every node computes the same
 * owner, and an instance joining or leaving moves only the keys it must (about 1/n).
 */
import { createHash } from 'node:crypto'
import type { RouteSpec } from '../desired/types'

function score (instance: string, key: string): string {
  return createHash('sha256').update(instance).update('\n').update(key).digest('hex')
}

/** The instance that owns `key` among `instances` (order does not matter); undefined when there are none. */
export function owner (key: string, instances: readonly string[]): string | undefined {
  let best: string | undefined
  let bestScore = ''
  for (const i of instances) {
    const s = score(i, key)
    if (best === undefined || s > bestScore || (s === bestScore && i < best)) { best = i; bestScore = s }
  }
  return best
}

/** The key of a request as the route says: a header's value, or a path segment (0 is the first after `/`). */
export function keyOf (route: RouteSpec, headers: Record<string, string | string[] | undefined>, url: string): string | undefined {
  if (route.key.header !== undefined) {
    const v = headers[route.key.header.toLowerCase()]
    const s = Array.isArray(v) ? v[0] : v
    return s === undefined || s === '' ? undefined : s
  }
  if (route.key.pathSegment !== undefined) {
    const path = url.split('?')[0]
    const seg = path.split('/').filter((x) => x !== '')[route.key.pathSegment]
    return seg === undefined ? undefined : decodeURIComponent(seg)
  }
  return undefined
}
