/**
 * The local API surface (node/api): what an instance asks its node over loopback HTTP,
 * with its key. Each route is a GET path template; its parameters are checked against
 * their schema before the handler runs (a bad one is a 400 naming it), and the handler's
 * result type is the body's. `apiPath` builds a path from the same table for clients.
 *
 *   self     GET /v1/self                   -> SelfView
 *   members  GET /v1/members                -> MemberView[]       alive members
 *   where    GET /v1/where/:service         -> InstancePlace[]    every instance, any state
 *   services GET /v1/services/:service      -> InstanceAddress[]  ready ones; `?watch=1` streams them (SSE)
 *   owner    GET /v1/owner/:service/:key    -> InstanceAddress    the ready instance that owns the key
 */
import type { InstanceAddress, InstancePlace } from '../api/views'
import { validator, type Check } from '../validate'

export interface SelfView { node: string, service: string, instance: string }
export interface MemberView { id: string, address: string, hub: boolean, labels: Record<string, string> }

export interface ApiRoute<Params, R> {
  /** `/v1/where/:service`: `:name` is a parameter (one path segment, percent-decoded). */
  path: string
  /** JSON Schema of the parameters, bounded. */
  params: object
  /** Types only: never set. */
  readonly __types?: { params: Params, result: R }
}
export type ApiTable = Record<string, ApiRoute<any, any>>
export type ParamsOf<E> = E extends ApiRoute<infer P, any> ? P : never
export type BodyOf<E> = E extends ApiRoute<any, infer R> ? R : never

const SERVICE = { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' } as const
const noParams = { type: 'object', additionalProperties: false, properties: {} }
const serviceParams = { type: 'object', additionalProperties: false, required: ['service'], properties: { service: SERVICE } }

function route<P, R> (path: string, params: object): ApiRoute<P, R> { return { path, params } }

export const localApiRoutes = {
  self: route<Record<string, never>, SelfView>('/v1/self', noParams),
  members: route<Record<string, never>, MemberView[]>('/v1/members', noParams),
  where: route<{ service: string }, InstancePlace[]>('/v1/where/:service', serviceParams),
  services: route<{ service: string }, InstanceAddress[]>('/v1/services/:service', serviceParams),
  owner: route<{ service: string, key: string }, InstanceAddress>('/v1/owner/:service/:key', {
    type: 'object',
    additionalProperties: false,
    required: ['service', 'key'],
    properties: { service: SERVICE, key: { type: 'string', minLength: 1, maxLength: 1024 } }
  })
}
export type LocalApiRoutes = typeof localApiRoutes

/** The path of `name` with `params` filled in (percent-encoded). */
export function apiPath<K extends keyof LocalApiRoutes> (name: K, params: ParamsOf<LocalApiRoutes[K]>): string {
  const values = params as Record<string, string>
  return localApiRoutes[name].path.replace(/:([a-z]+)/g, (_m, p: string) => encodeURIComponent(values[p] ?? ''))
}

export type Matched<T extends ApiTable> = { [K in keyof T & string]: { name: K, params: ParamsOf<T[K]> } }[keyof T & string]

/**
 * A matcher for `table`: a request path to its route and checked parameters; undefined
 * when no route has that shape; an OriginError (E_PAYLOAD_INVALID, or E_ARGS for bad
 * percent-encoding) naming the parameter when one is wrong.
 */
export function routeMatcher<T extends ApiTable> (table: T): (path: string) => Matched<T> | undefined {
  const compiled = Object.entries(table).map(([name, r]) => {
    const names: string[] = []
    const re = new RegExp('^' + r.path.replace(/:([a-z]+)/g, (_m, p: string) => { names.push(p); return '([^/]+)' }) + '$')
    const check: Check<unknown> = validator(r.params, `a parameter of GET ${r.path}`, 'E_PAYLOAD_INVALID', { firstError: true })
    return { name, re, names, check }
  })
  return (path) => {
    for (const c of compiled) {
      const m = c.re.exec(path)
      if (m === null) continue
      const raw: Record<string, string> = {}
      c.names.forEach((n, i) => { raw[n] = decode(m[i + 1], n) })
      return { name: c.name, params: c.check(raw) } as Matched<T>
    }
    return undefined
  }
}

function decode (s: string, name: string): string {
  try { return decodeURIComponent(s) } catch {
    throw new ApiParamError(`the ${name} is not valid percent-encoding`)
  }
}

/** A parameter that is not percent-encoding: the same 400 as a schema failure. */
export class ApiParamError extends Error {}
