/**
 * api: the node's local HTTP API for the processes it runs, on loopback only. Each
 * instance gets its own key (in ORIGIN_API_KEY), bound to the instance: an instance that
 * obtained another's key could act only as that one instance, and keys are new with each
 * run of the node. Requests without a valid key are refused.
 *
 *   GET /v1/self           { node, service, instance }    who am I
 *   GET /v1/members        [{ id, address, hub, labels }]  alive members
 *   GET /v1/where/<svc>    [{ instance, node, address, host, port, state }] where a service runs:
 *                          `address` is host:port of the instance's first port
 *
 * @example
 *   curl -H "authorization: Bearer $ORIGIN_API_KEY" $ORIGIN_API/v1/where/web
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Hubs } from '../hubs'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import { serviceOfInstance } from '../scheduler'
import { hostOf } from '../supervisor/environment'

export interface ApiComponents { membership: Membership, hubs: Hubs, log: Logger }

export interface LocalApi {
  start (): Promise<void>
  stop (): Promise<void>
  /** http://127.0.0.1:PORT, once started. */
  readonly url: string
  /** The key the processes of `instance` (e.g. `web-0`, `agent@node-1`) present. */
  keyFor (instance: string): string
}

export function localApi () {
  return (c: ApiComponents): LocalApi => new HttpApi(c)
}

class HttpApi implements LocalApi {
  private readonly secret = randomBytes(32)
  private server?: http.Server
  private address = ''

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
    const server = http.createServer((req, res) => {
      const instance = this.instanceOf(req.headers.authorization)
      const send = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n') }
      if (instance === undefined) { send(401, { error: 'missing or invalid key: send "authorization: Bearer $ORIGIN_API_KEY"' }); return }
      const table = this.c.membership.table()
      const hubs = new Set(this.c.hubs.current())
      const path = (req.url ?? '').split('?')[0]
      if (req.method !== 'GET') { send(405, { error: 'only GET' }); return }
      if (path === '/v1/self') { send(200, { node: this.c.membership.id, service: serviceOfInstance(instance), instance }); return }
      if (path === '/v1/members') {
        send(200, Object.values(table).filter((m) => m.status === 'alive').map((m) => ({ id: m.id, address: m.address, hub: hubs.has(m.id), labels: m.characteristics.labels })))
        return
      }
      const where = /^\/v1\/where\/([a-z][a-z0-9-]{0,62})$/.exec(path)
      if (where !== null) {
        const out = Object.values(table).filter((m) => m.status === 'alive').flatMap((m) =>
          Object.entries(m.instances ?? {})
            .filter(([id]) => serviceOfInstance(id) === where[1])
            .map(([instance, s]) => {
              const port = Number(/:(\d+)$/.exec(s.a ?? '')?.[1] ?? 0)
              const host = s.a === undefined ? hostOf(m.address) : hostOf(s.a)
              return { instance, node: m.id, address: s.a ?? '', host, port, state: s.s }
            }))
        send(200, out)
        return
      }
      send(404, { error: `no route ${path}` })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve() })
    })
    this.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    this.server = server
    this.c.log.debug(`local API on ${this.address}`)
  }

  async stop (): Promise<void> {
    const s = this.server
    this.server = undefined
    if (s !== undefined) await new Promise<void>((resolve) => { s.close(() => resolve()); s.closeAllConnections() })
  }
}
