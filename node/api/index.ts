/**
 * api: the node's local HTTP API for the processes it runs, on loopback only. Each
 * instance gets its own key (in ORIGIN_API_KEY), bound to the instance: an instance that
 * obtained another's key could act only as that one instance, and keys are new with each
 * run of the node. Requests without a valid key are refused (401) and logged, naming the
 * instance the key claims and the caller's uid where known, at most once per caller per 10 s.
 *
 *   GET /v1/self                 { node, service, instance }    who am I
 *   GET /v1/members              [{ id, address, hub, labels }]  alive members
 *   GET /v1/where/<svc>          [{ instance, node, address, host, port, state }] where a service runs:
 *                                `address` is host:port of the instance's first port; `state`
 *                                is `unknown` while its node is suspect, `lost` once it is dead
 *   GET /v1/services/<svc>       [{ instance, node, address, host, port, ports }] its ready instances
 *                                (the ones the proxy sends to); `?watch=1`: server-sent events,
 *                                an `instances` event now and each time that list changes
 *   GET /v1/owner/<svc>/<key>    { instance, node, address, host, port, ports } the ready instance
 *                                that owns the key (the proxy's keyed routing); the same on every node
 *
 * @example
 *   curl -H "authorization: Bearer $ORIGIN_API_KEY" $ORIGIN_API/v1/where/web
 *   curl -N -H "authorization: Bearer $ORIGIN_API_KEY" "$ORIGIN_API/v1/services/kv?watch=1"
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { serviceOfInstance } from '../scheduler'
// The proxy's pure reader of /proc/net/tcp: who is on the other end of a loopback socket.
import { holderOf, loopbackPeer, loopbackPeerUid } from '../proxy/peercred'
import type { Usage } from '../supervisor/types'
import { ownerOf, readyInstances, whereInstances, type InstanceAddress } from './views'
import { systemClock } from '../clock'
import { errorMessage } from '../errors'
import type { MemberTable } from '../membership'
import { localApiRoutes, routeMatcher, type BodyOf, type LocalApiRoutes, type ParamsOf } from '../protocol/local-api'

type RouteHandlers = { [K in keyof LocalApiRoutes]: (table: MemberTable, params: ParamsOf<LocalApiRoutes[K]>, instance: string) => BodyOf<LocalApiRoutes[K]> | undefined }
import { Watches } from './watch'
import type { ApiComponents, ApiInit, LocalApi } from './types'

/** Who is on the other end of a connection, as far as procfs tells. */
interface Caller { uid?: number, instance?: string }

/** A refused caller is logged at most once in this long. */
const REFUSAL_LOG_MS = 10_000

export type { ApiComponents, ApiInit, LocalApi } from './types'

export function localApi (_init: ApiInit = {}) {
  return (c: ApiComponents): LocalApi => new HttpApi(c)
}

class HttpApi implements LocalApi {
  private readonly secret = randomBytes(32)
  private server?: http.Server
  private address = ''
  private watches?: Watches
  /** Caller -> when its refusal was last logged. */
  private readonly refusedAt = new Map<string, number>()
  /** Who is on the other end of each connection, found once per connection. */
  private readonly callers = new WeakMap<object, Promise<Caller>>()

  private readonly match = routeMatcher(localApiRoutes)
  /** One handler per route of node/protocol/local-api.ts: each answers its route's body type (undefined: none ready, a 503). */
  private readonly handlers: RouteHandlers = {
    self: (_table, _p, instance) => ({ node: this.c.membership.id, service: serviceOfInstance(instance), instance }),
    members: (table) => {
      const hubs = new Set(this.c.hubs.current())
      return Object.values(table).filter((m) => m.status === 'alive').map((m) => ({ id: m.id, address: m.address, hub: hubs.has(m.id), labels: m.characteristics.labels }))
    },
    where: (table, p) => whereInstances(table, p.service),
    services: (table, p) => readyInstances(table, p.service, this.firstPort(p.service)),
    owner: (table, p) => ownerOf(table, p.service, p.key, this.firstPort(p.service))
  }

  constructor (private readonly c: ApiComponents) {}

  get url (): string { return this.address }

  keyFor (instance: string): string {
    return `${instance}.${createHmac('sha256', this.secret).update(`instance\0${instance}`).digest('hex')}`
  }

  /** The instance a key was issued to, or undefined. */
  private instanceOf (auth: string | undefined): string | undefined {
    const key = /^Bearer (\S+)$/.exec(auth ?? '')?.[1]
    const dot = key?.lastIndexOf('.') ?? -1
    if (key === undefined || dot <= 0) return undefined
    const instance = key.slice(0, dot)
    const expected = Buffer.from(this.keyFor(instance))
    const given = Buffer.from(key)
    return expected.length === given.length && timingSafeEqual(expected, given) ? instance : undefined
  }

  async start (): Promise<void> {
    if (this.server !== undefined) return
    const server = http.createServer(async (req, res) => {
      const instance = this.instanceOf(req.headers.authorization)
      const send = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n') }
      if (instance === undefined) {
        send(401, { error: 'missing or invalid key: send "authorization: Bearer $ORIGIN_API_KEY"' })
        this.logRefusal(req, (server.address() as AddressInfo).port)
        return
      }
      const stolen = await this.wrongHands(req, instance, (server.address() as AddressInfo).port)
      if (stolen !== undefined) {
        send(401, { error: `this key is ${instance}'s, and the caller is ${stolen.instance ?? `not ${instance}`}` })
        this.logRefusal(req, (server.address() as AddressInfo).port, stolen)
        return
      }
      const [path, query = ''] = (req.url ?? '').split('?')
      if (req.method !== 'GET') { send(405, { error: 'only GET' }); return }
      let matched
      try {
        matched = this.match(path)
      } catch (err) {
        send(400, { error: errorMessage(err) })
        return
      }
      if (matched === undefined) { send(404, { error: `no route ${path}` }); return }
      const table = this.c.membership.table()
      switch (matched.name) {
        case 'self': send(200, this.handlers.self(table, matched.params, instance)); return
        case 'members': send(200, this.handlers.members(table, matched.params, instance)); return
        case 'where': send(200, this.handlers.where(table, matched.params, instance)); return
        case 'services': {
          const { service } = matched.params
          const view = (): InstanceAddress[] => this.handlers.services(this.c.membership.table(), { service }, instance) ?? []
          if (new URLSearchParams(query).get('watch') === '1') this.watches?.add(res, view)
          else send(200, view())
          return
        }
        case 'owner': {
          const o = this.handlers.owner(table, matched.params, instance)
          if (o === undefined) send(503, { error: `${matched.params.service} has no ready instance right now; try again in a moment` })
          else send(200, o)
        }
      }
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve() })
    })
    this.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    this.server = server
    this.watches = new Watches(this.c.membership.events)
    this.c.log.debug(`local API on ${this.address}`)
  }

  async stop (): Promise<void> {
    const s = this.server
    this.server = undefined
    this.watches?.close()
    this.watches = undefined
    if (s !== undefined) await new Promise<void>((resolve) => { s.close(() => resolve()); s.closeAllConnections() })
  }

  /** The name of a service's first port, as its spec says (`main` when the spec says none or is not known). */
  private firstPort (service: string): string {
    return Object.keys(this.c.spec?.current()?.spec.services[service]?.ports ?? {})[0] ?? 'main'
  }

  /**
   * The caller presenting `instance`'s key when it is not `instance` (so it took the key
   * from somewhere): another of this node's instances (the process holding the socket is
   * one of its), or a process of another service's user. Undefined when the key is in the
   * right hands or that cannot be told (procfs missing). The node's own uid, when it is no
   * instance, may use any key (an operator on the machine, a health check).
   */
  private async wrongHands (req: http.IncomingMessage, instance: string, serverPort: number): Promise<Caller | undefined> {
    const caller = await this.callerOf(req, serverPort)
    if (caller.instance !== undefined) return caller.instance === instance ? undefined : caller
    const expected = this.c.instanceUid?.(instance)
    if (expected === undefined || caller.uid === undefined) return undefined
    return caller.uid === expected || caller.uid === process.getuid?.() ? undefined : caller
  }

  private async callerOf (req: http.IncomingMessage, serverPort: number): Promise<Caller> {
    let known = this.callers.get(req.socket)
    if (known === undefined) {
      known = (async (): Promise<Caller> => {
        const peer = await loopbackPeer(req.socket.remotePort ?? 0, serverPort).catch(() => undefined)
        if (peer === undefined || this.c.instanceUsage === undefined) return { uid: peer?.uid }
        // Only instances running as the caller's uid can hold its socket (all of them when services share the node's uid).
        const usage = Object.entries(await this.c.instanceUsage().catch(() => ({}) as Record<string, Usage>))
          .filter(([i]) => { const uid = this.c.instanceUid?.(i); return uid === undefined ? peer.uid === process.getuid?.() : uid === peer.uid })
        const pid = await holderOf(peer.inode, usage.flatMap(([, u]) => u.pids))
        return { uid: peer.uid, instance: pid === undefined ? undefined : usage.find(([, u]) => u.pids.includes(pid))?.[0] }
      })()
      this.callers.set(req.socket, known)
    }
    return await known
  }

  /** Logs a refused request with the instance its key claims and the caller's uid, once per caller per 10 s. */
  private logRefusal (req: http.IncomingMessage, serverPort: number, wrong?: Caller): void {
    const key = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1]
    // The claim is the caller's word, so it is cut short; keys hold no spaces or newlines.
    const claimed = key === undefined || key.lastIndexOf('.') <= 0 ? undefined : key.slice(0, Math.min(key.lastIndexOf('.'), 80))
    const what = `${req.method ?? '?'} ${(req.url ?? '').split('?')[0].slice(0, 120)}`
    const uidKnown = wrong === undefined ? loopbackPeerUid(req.socket.remotePort ?? 0, serverPort).catch(() => undefined) : Promise.resolve(wrong.uid)
    void uidKnown.then((uid) => {
      // A caller is its uid (where /proc tells it) and the instance it claims to be.
      const caller = `${uid ?? '?'} ${wrong?.instance ?? ''} ${claimed ?? '-'}`
      const now = (this.c.clock ?? systemClock).now()
      if (now - (this.refusedAt.get(caller) ?? -Infinity) < REFUSAL_LOG_MS) return
      if (this.refusedAt.size >= 256) for (const [k, t] of this.refusedAt) if (now - t >= REFUSAL_LOG_MS) this.refusedAt.delete(k)
      if (this.refusedAt.size >= 256) return // a flood of made-up claims: those already logged say enough
      this.refusedAt.set(caller, now)
      const who = wrong !== undefined
        ? `a caller with ${claimed ?? '?'}'s key that is not ${claimed ?? '?'} (${wrong.instance === undefined ? 'it runs as another service\'s user' : `it is ${wrong.instance}`})`
        : claimed === undefined ? (key === undefined ? 'a caller with no key' : 'a caller with a malformed key') : `a caller with a key for ${claimed} that this node did not issue`
      this.c.log.warn(`refused ${what} from ${who}${uid === undefined ? '' : ` (uid ${uid})`} (401)`)
    })
  }
}
