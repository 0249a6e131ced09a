/**
 * The methods a transport serves, each with its payload check compiled once (on first use)
 * from its schema. RPC connections look a request's method up here.
 */
import { OriginError } from '../errors'
import { validator, type Check } from '../validate'
import { TrafficBook, type Traffic } from './traffic'
import type { Method } from './types'

export interface Route {
  method: Method
  check: Check<unknown>
  /** Its unary calls' bytes (traffic.ts), found once, when the first is counted. */
  traffic?: Traffic
}

export class Router {
  private readonly methods = new Map<string, Route>()
  /** Bytes of the unary calls of every connection using this router, by method. */
  readonly traffic = new TrafficBook()

  /** The traffic counters of `route`. */
  trafficOf (route: Route): Traffic | undefined {
    if (route.traffic === undefined) route.traffic = this.traffic.of(route.method.name)
    return route.traffic
  }

  add (method: Method): void {
    if (this.methods.has(method.name)) throw new Error(`method ${method.name} is registered twice`)
    // First error only: a peer's invalid payload should not cost more to report than to send.
    const check = method.payload === undefined ? noPayload(method.name) : validator<unknown>(method.payload, `payload of ${method.name}`, 'E_PAYLOAD_INVALID', { firstError: true })
    this.methods.set(method.name, { method, check })
  }

  get (name: string): Route | undefined {
    return this.methods.get(name)
  }
}

/** The check of a method without a payload schema: nothing (or nil) is all it takes. */
function noPayload (name: string): Check<unknown> {
  return (payload: unknown) => {
    if (payload === undefined || payload === null) return undefined
    const got = Array.isArray(payload) ? 'an array' : typeof payload === 'object' ? 'an object' : `a ${typeof payload}`
    throw new OriginError('E_PAYLOAD_INVALID', `${name} takes no payload, and this call sent ${got}`, { method: name })
  }
}
