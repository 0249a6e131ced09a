/**
 * The `dns` method: peers from a DNS name, re-resolved on an interval. What a Kubernetes
 * headless Service (or any DNS) provides.
 *
 * - With `port` set: the name's A and AAAA records, each paired with `port`.
 * - Without: the name's SRV records (target and port; targets resolved to addresses with
 *   the same server) when it has any, else its A and AAAA records with this node's listen
 *   port (every node of an image listens on the same port).
 */
import { Resolver } from 'node:dns/promises'
import { OriginError } from '../errors'
import { PolledDiscovery } from './polled'
import { MAX_PEERS, joinHostPort } from './peers'
import type { Discovery, DiscoveryComponents } from './types'

export interface DnsDiscoveryInit {
  /** The name to resolve, e.g. `origin.prod.svc.cluster.local` or `_mesh._tcp.origin.example.com`. */
  name: string
  /** Port to pair A/AAAA records with; set, SRV records are not asked for. @default the listen port, after SRV */
  port?: number
  /**
   * Time between resolutions. Shorter finds new nodes (and split clusters) sooner for more
   * queries; a node in a cluster learns members by gossip anyway. @default 5000
   */
  intervalMs?: number
  /** DNS server `host` or `host:port` to ask instead of the system's. @default the system resolver's servers */
  server?: string
  /** Time one query waits for an answer before trying again. @default 2000 */
  timeoutMs?: number
}

export const dnsDefaults = { intervalMs: 5000, timeoutMs: 2000 }

/** Nothing at this name (yet): a lookup that found nobody, not one that failed. */
const EMPTY = new Set(['ENODATA', 'ENOTFOUND', 'NOTFOUND', 'NODATA'])

export function dnsDiscovery (init: DnsDiscoveryInit) {
  return (c: DiscoveryComponents): Discovery => {
    const o = { ...dnsDefaults, ...init }
    const resolver = new Resolver({ timeout: o.timeoutMs, tries: 2 })
    if (o.server !== undefined) {
      try {
        resolver.setServers([o.server])
      } catch {
        throw new OriginError('E_CONFIG_INVALID', `discovery.dns.server "${o.server}" is not a DNS server address`, { field: 'discovery.dns.server' })
      }
    }
    const addresses = async (name: string): Promise<string[]> => {
      const [v4, v6] = await Promise.all([orEmpty(resolver.resolve4(name)), orEmpty(resolver.resolve6(name))])
      return [...v4, ...v6]
    }
    const lookup = async (): Promise<string[]> => {
      if (o.port === undefined) {
        const srv = await orEmpty(resolver.resolveSrv(o.name))
        if (srv.length > 0) {
          const sorted = [...srv].sort((a, b) => a.priority - b.priority || b.weight - a.weight).slice(0, MAX_PEERS)
          const found = await Promise.all(sorted.map(async (r) => {
            const hosts = await addresses(r.name)
            return (hosts.length > 0 ? hosts : [r.name]).map((h) => joinHostPort(h, r.port))
          }))
          return [...new Set(found.flat())].slice(0, MAX_PEERS)
        }
      }
      const port = o.port ?? c.listenPort
      return [...new Set((await addresses(o.name)).map((h) => joinHostPort(h, port)))].slice(0, MAX_PEERS)
    }
    const where = o.server === undefined ? '' : ` at ${o.server}`
    return new PolledDiscovery(`dns ${o.name}${where}`, o.intervalMs, c.log, lookup, c.clock)
  }
}

async function orEmpty<T> (p: Promise<T[]>): Promise<T[]> {
  try {
    return await p
  } catch (err) {
    if (EMPTY.has((err as { code?: string }).code ?? '')) return []
    throw err
  }
}
