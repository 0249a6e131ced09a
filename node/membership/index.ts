/**
 * membership: join through seeds (or originate a cluster when none answers), gossip the
 * member table, detect failures by heartbeats that stop advancing, leave gracefully.
 *
 * Every gossip round a node raises its own heartbeat and exchanges its whole table with
 * `fanout` random live peers (push-pull). A member whose heartbeat has not advanced for
 * `suspectAfterMs` is suspect, for `deadAfterMs` dead; a live member that sees itself
 * suspected refutes it with a higher incarnation. Seeds that are not live members are
 * retried, which is how two clusters that both originated find each other and merge.
 *
 * @example
 *   const m = membership({ seeds: ['10.0.0.4:7400'] })({ transport, log, self })
 *   m.events.on('change', (table) => ...)
 *   await m.start()            // joined or originated
 *   await m.stop()             // says `left` to everyone, then stops
 */
import { EventEmitter } from 'node:events'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import type { Transport } from '../transport'
import { dialableAddress } from '../transport/dial'
import { gossipPayload } from './schema'
import { changedIds, markStatus, mergeTables, refute } from './table'
import type { Characteristics, InstanceSummary, Member, MemberTable } from './types'
import { FailureDetector } from './detector'

export type { Member, MemberTable, MemberStatus, Characteristics, InstanceSummary } from './types'

export interface MembershipInit {
  /** host:port of nodes to join through. Empty: originate. */
  seeds: string[]
  /** Time between gossip rounds. Shorter spreads news faster for more traffic. @default 200 */
  gossipIntervalMs?: number
  /** Peers contacted per round. @default 3 */
  fanout?: number
  /**
   * Silence before a member is suspect. Too short gives false suspicions on a loaded
   * machine; a suspect keeps its role, so this only delays nothing. @default 2500
   */
  suspectAfterMs?: number
  /**
   * Silence before a member is dead: its roles move elsewhere. Shorter fails over sooner
   * but risks declaring a slow member dead (it refutes and comes back). @default 5000
   */
  deadAfterMs?: number
  /** How often seeds that are not live members are tried again. @default 2000 */
  seedRetryMs?: number
  /** How long a graceful leave waits for peers to hear it. @default 1000 */
  leaveTimeoutMs?: number
}

export const membershipDefaults = {
  gossipIntervalMs: 200, fanout: 3, suspectAfterMs: 2500, deadAfterMs: 5000, seedRetryMs: 2000, leaveTimeoutMs: 1000
}

export interface MembershipComponents {
  transport: Transport
  log: Logger
  /** This node. `address` is what others dial; default: the transport's listen address once started. */
  self: { id: string, address?: string, characteristics: Characteristics }
  /** Clock, for tests. @default Date.now */
  now?: () => number
}

export interface Membership {
  start (): Promise<void>
  stop (): Promise<void>
  readonly id: string
  /** The address others dial, once started. */
  readonly address: string
  table (): MemberTable
  /** Set this node's hub flag (the hub layer's hysteresis reads it). */
  setHubClaim (hub: boolean): void
  /** Say which spec version this node runs. */
  setSpec (version: string): void
  /** Say which service instances this node runs, and in what state. */
  setInstances (instances: Record<string, InstanceSummary>): void
  /** Peers this node exchanged gossip with (either way) within the last `withinMs`. */
  reachable (withinMs: number): Set<string>
  /**
   * An operator says a dead member is gone for good: it becomes `left` everywhere (so it
   * no longer counts against the singleton majority). If it ever starts again, its new
   * incarnation makes it alive.
   */
  forget (id: string): void
  /** Emits 'change' (table) whenever the table changes. */
  readonly events: EventEmitter
}

export function membership (init: MembershipInit) {
  return (components: MembershipComponents): Membership => new GossipMembership(init, components)
}

class GossipMembership implements Membership {
  readonly events = new EventEmitter()
  private readonly o: Required<MembershipInit>
  private readonly now: () => number
  private readonly log: Logger
  private self!: Member
  private members: MemberTable = {}
  private readonly detector: FailureDetector
  private readonly busy = new Set<string>()
  private readonly contacts = new Map<string, number>()
  private timers: NodeJS.Timeout[] = []
  private running = false
  private round = 0

  constructor (init: MembershipInit, private readonly c: MembershipComponents) {
    this.o = { ...membershipDefaults, ...init }
    this.now = c.now ?? Date.now
    this.log = c.log
    this.detector = new FailureDetector(this.o)
    c.transport.handle({ kind: 'unary', name: 'mesh.join', role: 'node', payload: gossipPayload, handler: (p: { from: string, table: MemberTable }) => this.receive(p.from, p.table) })
    c.transport.handle({ kind: 'unary', name: 'mesh.gossip', role: 'node', payload: gossipPayload, handler: (p: { from: string, table: MemberTable }) => this.receive(p.from, p.table) })
  }

  get id (): string { return this.c.self.id }
  get address (): string { return this.self?.address ?? '' }
  table (): MemberTable { return this.members }

  setHubClaim (hub: boolean): void {
    if (!this.running || this.self.hub === hub) return
    this.updateSelf({ ...this.self, hub, heartbeat: this.self.heartbeat + 1 })
  }

  setSpec (version: string): void {
    if (!this.running || this.self.spec === version) return
    this.updateSelf({ ...this.self, spec: version, heartbeat: this.self.heartbeat + 1 })
  }

  forget (id: string): void {
    const m = this.members[id]
    if (m === undefined) throw new OriginError('E_NOT_FOUND', `no member "${id}"`, { id })
    if (m.status !== 'dead') throw new OriginError('E_ARGS', `${id} is ${m.status}: only a dead member can be forgotten`, { id, status: m.status })
    this.log.info(`forgetting ${id} (an operator says it is gone for good)`)
    this.commit(this.members, markStatus(this.members, id, 'left'))
  }

  reachable (withinMs: number): Set<string> {
    const since = this.now() - withinMs
    return new Set([...this.contacts].filter(([, at]) => at >= since).map(([id]) => id))
  }

  setInstances (instances: Record<string, InstanceSummary>): void {
    if (!this.running || JSON.stringify(this.self.instances ?? {}) === JSON.stringify(instances)) return
    this.updateSelf({ ...this.self, instances, heartbeat: this.self.heartbeat + 1 })
  }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    this.self = {
      id: this.c.self.id,
      address: this.c.self.address ?? dialableAddress(this.c.transport.address),
      // Above anything the cluster remembers of an earlier run of this id.
      incarnation: this.now(),
      heartbeat: 0,
      status: 'alive',
      hub: false,
      characteristics: this.c.self.characteristics
    }
    this.members = { [this.self.id]: this.self }
    const seeds = this.otherSeeds()
    const answered = (await Promise.all(seeds.map(async (s) => await this.exchange(s, 'mesh.join')))).some(Boolean)
    if (seeds.length === 0) this.log.info(`no seeds: originating cluster as ${this.self.id}`)
    else if (!answered) this.log.info(`no seed answered (${seeds.join(', ')}): originating cluster as ${this.self.id}; will keep trying them`)
    else this.log.info(`joined through ${seeds.join(', ')}: ${Object.keys(this.members).length} members known`)
    this.timers.push(setInterval(() => this.tick(), this.o.gossipIntervalMs))
    this.timers.push(setInterval(() => this.retrySeeds(), this.o.seedRetryMs))
    // Nodes started together often find their seeds not listening yet: try again soon
    // rather than a whole seedRetryMs later, so they merge within a fraction of a second.
    for (const ms of [100, 250, 500, 1000].filter((d) => d < this.o.seedRetryMs)) {
      this.timers.push(setTimeout(() => { if (this.running) this.retrySeeds() }, ms))
    }
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    for (const t of this.timers) clearTimeout(t)
    this.timers = []
    this.updateSelf({ ...this.self, status: 'left', heartbeat: this.self.heartbeat + 1 })
    const peers = this.peers()
    const told = await Promise.all(peers.map(async (m) => await this.exchange(m.address, 'mesh.gossip', this.o.leaveTimeoutMs, true)))
    this.log.info(`left the cluster (told ${told.filter(Boolean).length} of ${peers.length} peers)`)
  }

  /** Merge what a peer sent; answer with our table (push-pull). */
  private receive (from: string, table: MemberTable): MemberTable {
    if (this.running) this.contacts.set(from, this.now())
    this.merge(table)
    return this.members
  }

  private merge (incoming: MemberTable): void {
    const before = this.members
    let next = mergeTables(before, incoming)
    const seen = next[this.self.id]
    const mine = refute(this.self, seen)
    if (mine !== this.self) {
      if (seen !== undefined && seen.status !== 'alive') this.log.info(`refuting: the cluster says I am ${seen.status}; incarnation ${mine.incarnation}`)
      this.self = mine
    }
    next = { ...next, [this.self.id]: this.self }
    this.commit(before, next)
  }

  private updateSelf (self: Member): void {
    this.self = self
    this.commit(this.members, { ...this.members, [self.id]: self })
  }

  private commit (before: MemberTable, next: MemberTable): void {
    this.members = next
    const now = this.now()
    this.detector.observe(next, this.self.id, now)
    const changed = changedIds(before, next)
    if (changed.length === 0) return
    for (const id of changed) this.describeChange(before[id], next[id])
    this.events.emit('change', next)
  }

  private describeChange (was: Member | undefined, is: Member): void {
    if (is.id === this.self.id) return
    const c = is.characteristics
    if (was === undefined) {
      this.log.info(`${is.id} at ${is.address} is ${is.status} (${c.cpus} cpus, ${c.memoryMb} MB, ${c.arch})`)
    } else if (was.status !== is.status) {
      const why = is.status === 'suspect' || is.status === 'dead' ? this.detector.describeSilence(is.id, this.now()) : ''
      this.log.info(`${is.id} is ${is.status}${why === '' ? '' : ` (${why})`}`)
    }
  }

  private tick (): void {
    if (!this.running) return
    this.round++
    this.self = { ...this.self, heartbeat: this.self.heartbeat + 1 }
    let next = { ...this.members, [this.self.id]: this.self }
    for (const [id, status] of this.detector.verdicts(next, this.self.id, this.now())) next = markStatus(next, id, status)
    this.commit(this.members, next)
    const peers = shuffle(this.peers()).slice(0, this.o.fanout)
    // Now and then, one dead member too: it may be back after a partition healed.
    const dead = Object.values(this.members).filter((m) => m.status === 'dead')
    if (dead.length > 0 && this.round % 10 === 0) peers.push(dead[this.round % dead.length])
    for (const m of peers) void this.exchange(m.address, 'mesh.gossip')
  }

  private retrySeeds (): void {
    const live = new Set(this.peers().map((m) => m.address))
    for (const s of this.otherSeeds()) if (!live.has(s)) void this.exchange(s, 'mesh.join')
  }

  private otherSeeds (): string[] {
    return [...new Set(this.o.seeds)].filter((s) => s !== this.self.address)
  }

  private peers (): Member[] {
    return Object.values(this.members).filter((m) => m.id !== this.self.id && (m.status === 'alive' || m.status === 'suspect'))
  }

  /** Push our table to `address`, merge its answer. False when it did not answer. */
  private async exchange (address: string, method: 'mesh.join' | 'mesh.gossip', timeoutMs?: number, evenIfBusy = false): Promise<boolean> {
    if (this.busy.has(address) && !evenIfBusy) return false
    this.busy.add(address)
    try {
      const conn = await this.c.transport.peer(address)
      const reply = await conn.call<MemberTable>(method, { from: this.self.id, table: this.members }, { timeoutMs: timeoutMs ?? this.o.gossipIntervalMs * 5 })
      const peer = Object.values(reply).find((m) => m.address === address)
      if (peer !== undefined) this.contacts.set(peer.id, this.now())
      this.merge(reply)
      return true
    } catch (err) {
      this.log.debug(`${method} to ${address} failed: ${errorMessage(err)}`)
      return false
    } finally {
      this.busy.delete(address)
    }
  }


}

function shuffle<T> (items: T[]): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]]
  }
  return a
}
