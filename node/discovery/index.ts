/**
 * discovery: how a node finds the nodes of its cluster. Every method configured runs at
 * once and their addresses are merged: `seeds` (a fixed list), `dns` (A/AAAA or SRV
 * records, re-resolved), `git` (a peers file in a repository, polled) and a `plugin`
 * (a module of the same interface). Membership asks `peers()` each time it tries seeds,
 * before joining and for as long as the node runs, so a node whose discovery found
 * nobody originates, and split clusters merge once discovery sees across the split.
 *
 * @example
 *   const d = discovery({ seeds: ['10.0.0.4:7400'], dns: { name: 'origin.prod.svc.cluster.local' } })({ log, dataDir, nodeId, listenPort: 7400 })
 *   await d.start()          // first lookups done (or timed out)
 *   d.peers()                // ['10.0.0.4:7400', '10.0.0.7:7400', ...]
 *   d.events.on('change', (peers) => ...)
 *   await d.stop()
 */
import { EventEmitter } from 'node:events'
import { systemClock, within } from '../clock'
import { dnsDiscovery, type DnsDiscoveryInit } from './dns'
import { gitDiscovery, type GitDiscoveryInit } from './git'
import { mergePeers, samePeers } from './peers'
import { pluginDiscovery, type PluginDiscoveryInit } from './plugin'
import { seedsDiscovery } from './seeds'
import type { Discovery, DiscoveryComponents } from './types'

export type { Discovery, DiscoveryComponents, DiscoveryFactory } from './types'
export { dnsDiscovery, dnsDefaults, type DnsDiscoveryInit } from './dns'
export { gitDiscovery, gitDefaults, type GitDiscoveryInit } from './git'
export { pluginDiscovery, type PluginDiscoveryInit } from './plugin'
export { seedsDiscovery, type SeedsDiscoveryInit } from './seeds'
export { parsePeersFile, mergePeers } from './peers'

export interface DiscoveryInit {
  /** Fixed `host:port` addresses (image.json's `seeds` and `discovery.seeds`). @default [] */
  seeds?: string[]
  dns?: DnsDiscoveryInit
  git?: GitDiscoveryInit
  plugin?: PluginDiscoveryInit
  /**
   * Longest the first lookups hold up the node's start. Longer lets a slow DNS or git
   * server answer before the node decides to originate; shorter starts sooner (a node
   * that originated merges when a later lookup finds the cluster). @default 5000
   */
  firstLookupMs?: number
}

export const discoveryDefaults = { firstLookupMs: 5000 }

/** The methods of `init` as one Discovery: started together, their peers merged. A plugin is loaded here. */
export function discovery (init: DiscoveryInit) {
  return (c: DiscoveryComponents): Discovery & { readonly methods: Discovery[] } => {
    const o = { ...discoveryDefaults, ...init }
    const methods: Discovery[] = [seedsDiscovery({ seeds: o.seeds })(c)]
    if (o.dns !== undefined) methods.push(dnsDiscovery(o.dns)(c))
    if (o.git !== undefined) methods.push(gitDiscovery(o.git)(c))
    if (o.plugin !== undefined) methods.push(pluginDiscovery(o.plugin)(c))
    return new Combined(methods, o.firstLookupMs, c)
  }
}

class Combined implements Discovery {
  readonly events = new EventEmitter()
  readonly name: string
  private last: string[] = []
  private readonly onChange = (): void => {
    const now = this.peers()
    if (samePeers(now, this.last)) return
    this.last = now
    this.events.emit('change', now)
  }

  constructor (readonly methods: Discovery[], private readonly firstLookupMs: number, private readonly c: DiscoveryComponents) {
    this.name = methods.map((m) => m.name).join(' + ')
  }

  peers (): string[] {
    return mergePeers(this.methods.map((m) => m.peers()))
  }

  async start (): Promise<void> {
    for (const m of this.methods) m.events.on('change', this.onChange)
    try {
      const first = await within(this.c.clock ?? systemClock, this.firstLookupMs, Promise.all(this.methods.map(async (m) => await m.start())))
      if (first === undefined) this.c.log.warn(`first lookups took over ${this.firstLookupMs} ms; going on with ${this.peers().length} peers found so far`)
    } catch (err) {
      await this.stop()
      throw err
    }
    this.last = this.peers()
    this.c.log.info(`${this.name}: ${this.last.length === 0 ? 'found nobody' : `found ${this.last.join(', ')}`}`)
  }

  async stop (): Promise<void> {
    for (const m of this.methods) m.events.off('change', this.onChange)
    await Promise.all(this.methods.map(async (m) => await m.stop()))
  }
}
