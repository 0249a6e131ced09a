/**
 * The gossip membership behind `membership()` (see index.ts): the I/O and timers around
 * the pure parts (hear.ts, table.ts, detector.ts, probes.ts).
 */
import { EventEmitter } from 'node:events'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import type { CallContext } from '../transport'
import { dialableAddress, splitAddress } from '../transport/dial'
import { FailureDetector } from './detector'
import { decideDowning, defaultDowning, membershipSignature, type DowningPolicy, type DowningView } from './downing'
import { hear, type Refusal } from './hear'
import { membershipDefaults, type MembershipInit } from './config'
import type { Membership, MembershipComponents } from './index'
import { Probes, type ProbeTarget } from './probes'
import { checkFrame, gossipPayload, type GossipFrame } from './schema'
import { changedIds, markStatus, replacementOf, retireReplaced } from './table'
import { UNHEALTHY_MAX_CHARS, type InstanceSummary, type Member, type MemberTable } from './types'

type Outcome = 'ok' | 'other' | 'failed' | 'busy'

export class GossipMembership implements Membership {
  readonly events = new EventEmitter()
  private readonly o: Required<MembershipInit>
  private readonly now: () => number
  private readonly log: Logger
  private self!: Member
  private members: MemberTable = {}
  /** Member id -> the highest incarnation it gave this node itself (see `hear`). */
  private direct: ReadonlyMap<string, number> = new Map()
  private readonly detector: FailureDetector
  private readonly probes: Probes
  private readonly busy = new Set<string>()
  /** Member id -> last gossip with it; members of the table only, so it is bounded by it. */
  private readonly contacts = new Map<string, number>()
  private readonly notes = new Map<string, { at: number, suppressed: number }>()
  /** Probes this node may still start this round: what hostile frames can make it dial is bounded per round. */
  private probeBudget = 0
  private timers: NodeJS.Timeout[] = []
  private running = false
  private round = 0
  private downing: DowningPolicy
  /** The membership signature (see downing.ts) and since when it has been as it is. */
  private signature = ''
  private stableSince = 0
  /** The last downing hold or wait logged, so each is said once. */
  private downingSaid = ''

  constructor (init: MembershipInit, private readonly c: MembershipComponents) {
    this.o = { ...membershipDefaults, ...init }
    this.now = c.now ?? Date.now
    this.log = c.log
    this.downing = defaultDowning(this.o.deadAfterMs)
    this.detector = new FailureDetector({ ...this.o, intervalMs: this.o.gossipIntervalMs })
    this.probes = new Probes({ max: this.o.maxUnconfirmed, retryMs: this.o.seedRetryMs, maxRetryMs: 60_000, forgetAfterMs: Math.max(30_000, 4 * this.o.deadAfterMs) })
    const payload = gossipPayload(this.o.maxMembers)
    for (const name of ['mesh.join', 'mesh.gossip']) {
      c.transport.handle({ kind: 'unary', name, role: 'node', payload, handler: (p: unknown, ctx: CallContext) => this.receive(name, p, ctx.peer.remote) })
    }
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

  setUnhealthy (reason?: string): void {
    // Cut to the bound peers accept: an entry they refuse would silence this node.
    const said = reason === undefined || reason === '' ? undefined : reason.slice(0, UNHEALTHY_MAX_CHARS)
    if (!this.running || this.self.characteristics.unhealthy === said) return
    const { unhealthy: _was, ...rest } = this.self.characteristics
    this.updateSelf({ ...this.self, characteristics: said === undefined ? rest : { ...rest, unhealthy: said }, heartbeat: this.self.heartbeat + 1 })
  }

  forget (id: string): void {
    const m = Object.hasOwn(this.members, id) ? this.members[id] : undefined
    if (m === undefined) throw new OriginError('E_NOT_FOUND', `no member "${id}"`, { id })
    if (m.status !== 'dead') throw new OriginError('E_ARGS', `${id} is ${m.status}: only a dead member can be forgotten`, { id, status: m.status })
    this.log.info(`forgetting ${id} (an operator says it is gone for good)`)
    this.commit(this.members, markStatus(this.members, id, 'left'))
  }

  setDowning (policy?: Partial<DowningPolicy>): void {
    const next = { ...defaultDowning(this.o.deadAfterMs), ...policy }
    if (JSON.stringify(next) === JSON.stringify(this.downing)) return
    this.downing = next
    if (next.strategy === 'lease' && this.c.lease === undefined) this.log.error('downing: strategy lease needs a lease plugin in image.json layers.lease; this node downs nobody until it has one')
    this.log.info(`downing: ${next.strategy} after ${(next.afterMs / 1000).toFixed(1)} s of stable membership${next.quorum === undefined ? '' : `, quorum ${next.quorum}`}`)
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
    this.stableSince = this.now()
    const seeds = this.otherSeeds()
    const answered = (await Promise.all(seeds.map(async (s) => await this.exchange({ address: s }, 'mesh.join')))).some((o) => o === 'ok')
    // The seeds told of members this node has not met: meet them before the layers above
    // read the table, so a node that just joined does not take the cluster for two nodes.
    await within(this.o.gossipIntervalMs * 5, this.probeDue(this.o.maxUnconfirmed, false))
    if (seeds.length === 0) this.log.info(`no seeds: originating cluster as ${this.self.id}`)
    else if (!answered) this.log.info(`no seed answered (${seeds.join(', ')}): originating cluster as ${this.self.id}; will keep trying them`)
    else this.log.info(`joined through ${seeds.join(', ')}: ${Object.keys(this.members).length} members known`)
    this.detector.watching(this.now())
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
    const told = await Promise.all(peers.map(async (m) => await this.exchange(m, 'mesh.gossip', this.o.leaveTimeoutMs, true)))
    this.log.info(`left the cluster (told ${told.filter((o) => o === 'ok').length} of ${peers.length} peers)`)
  }

  /**
   * A peer called: check its frame, believe what can be believed, answer with our table
   * (push-pull). Its word about itself counts as its own when it calls from the host this
   * node knows it at; otherwise it is hearsay until this node calls it back.
   */
  private receive (method: string, payload: unknown, remote: string): GossipFrame {
    if (this.self === undefined) throw new OriginError('E_NOT_READY', 'membership has not started yet')
    const frame = checkFrame(payload, `payload of ${method}`, this.o.maxMembers)
    if (frame.from === this.self.id) throw new OriginError('E_PAYLOAD_INVALID', `payload of ${method} is invalid: the sender says it is this node (${frame.from})`)
    const known = Object.hasOwn(this.members, frame.from) ? this.members[frame.from] : undefined
    if (known !== undefined && this.running) this.contacts.set(frame.from, this.now())
    const speaker = known !== undefined && hostOf(known.address) === hostOf(remote) ? frame.from : undefined
    this.hear(frame, speaker, `${frame.from} (calling from ${remote})`)
    return { from: this.self.id, table: this.members }
  }

  private hear (frame: GossipFrame, speaker: string | undefined, source: string): void {
    const now = this.now()
    const before = this.members
    const seen = Object.hasOwn(frame.table, this.self.id) ? frame.table[this.self.id] : undefined
    const fresh = this.detector.heardWithin(now, this.o.suspectAfterMs)
    const r = hear({ self: this.self, table: before, direct: this.direct }, frame.table, { speaker, fresh, now }, this.o)
    if (r.knowledge.self !== this.self && seen !== undefined) {
      const after = `now incarnation ${r.knowledge.self.incarnation}`
      this.log.info(seen.status === 'alive'
        ? `refuting: ${source} has an entry for me I did not write (incarnation ${seen.incarnation}); ${after}`
        : `refuting: the cluster says I am ${seen.status} (${source}, at incarnation ${seen.incarnation}); ${after}`)
    }
    this.self = r.knowledge.self
    this.direct = r.knowledge.direct
    this.commit(before, r.knowledge.table)
    const queued = this.noteUnknown(r.unknown, frame.from, now, source) + this.noteRefused(r.refused, now, source)
    if (queued > 0 && this.running) void this.probeDue(this.o.maxNewPerFrame)
  }

  /** Queue members heard of for a direct contact, at most `maxNewPerFrame` from a frame (the sender itself first). */
  private noteUnknown (unknown: ProbeTarget[], sender: string, now: number, source: string): number {
    if (unknown.length === 0) return 0
    const own = unknown.find((u) => u.id === sender)
    const others = shuffle(unknown.filter((u) => u !== own)).slice(0, this.o.maxNewPerFrame - (own === undefined ? 0 : 1))
    let taken = 0
    if (own !== undefined && this.probes.heard(own, now, true)) taken++
    for (const u of others) if (this.probes.heard(u, now)) taken++
    if (taken < unknown.length) {
      this.note('unknown', `${source} tells of ${unknown.length} members this node has not met; ${unknown.length - taken} not taken (at most ${this.o.maxNewPerFrame} a frame, ${this.o.maxUnconfirmed} waiting at once): a member counts once this node has talked to it`)
    }
    return taken
  }

  private noteRefused (refused: Refusal[], now: number, source: string): number {
    if (refused.length === 0) return 0
    let queued = 0
    for (const r of refused) if (r.recheck && this.probes.heard(r, now)) queued++
    const first = refused.slice(0, 3).map((r) => `${r.id}: ${r.reason}`).join('; ')
    this.note('refused', `refused ${refused.length} entries from ${source}: ${first}${refused.length > 3 ? '; ...' : ''}`)
    return queued
  }

  /** Warn, at most once per 10 s per kind: a hostile peer must not be able to flood the log. */
  private note (kind: string, message: string): void {
    const now = this.now()
    const last = this.notes.get(kind)
    if (last !== undefined && now - last.at < 10_000) { last.suppressed++; return }
    const more = last !== undefined && last.suppressed > 0 ? ` (and ${last.suppressed} more like it in the last ${((now - last.at) / 1000).toFixed(0)} s)` : ''
    this.notes.set(kind, { at: now, suppressed: 0 })
    this.log.warn(message + more)
  }

  /**
   * Contact up to `limit` members whose probe is due (and, when `budgeted`, no more than
   * `maxNewPerFrame` a round in all); resolves when every one answered or failed.
   */
  private async probeDue (limit: number, budgeted = true): Promise<void> {
    if (!this.running) return
    const targets = this.probes.due(this.now(), budgeted ? Math.min(limit, this.probeBudget) : limit)
    if (budgeted) this.probeBudget -= targets.length
    await Promise.all(targets.map(async (t) => {
      const outcome = await this.exchange(t, 'mesh.gossip')
      if (outcome === 'busy') this.probes.release(t.id)
      else if (outcome === 'ok') this.probes.succeeded(t.id, this.now())
      else this.probes.failed(t.id, this.now())
    }))
  }

  private updateSelf (self: Member): void {
    this.self = self
    this.commit(this.members, { ...this.members, [self.id]: self })
  }

  private commit (before: MemberTable, proposed: MemberTable): void {
    const next = retireReplaced(proposed)
    this.members = next
    const now = this.now()
    this.detector.observe(next, this.self.id, now)
    const signature = membershipSignature(next)
    if (signature !== this.signature) {
      this.signature = signature
      this.stableSince = now
    }
    const changed = changedIds(before, next)
    if (changed.length === 0) return
    for (const id of changed) this.describeChange(before[id], next[id], next)
    this.events.emit('change', next)
  }

  private describeChange (was: Member | undefined, is: Member, table: MemberTable): void {
    if (is.id === this.self.id) return
    const c = is.characteristics
    if (was === undefined) {
      this.log.info(`${is.id} at ${is.address} is ${is.status} (${c.cpus} cpus, ${c.memoryMb} MB, ${c.arch})`)
    } else if (was.status !== is.status) {
      const successor = was.status === 'dead' && is.status === 'left' ? replacementOf(table, is) : undefined
      const why = successor !== undefined
        ? `replaced: ${successor.id} answers at its address ${is.address}`
        : is.status === 'suspect' || is.status === 'dead' ? this.detector.describeSilence(is.id, this.now()) : ''
      this.log.info(`${is.id} is ${is.status}${why === '' ? '' : ` (${why})`}`)
    }
  }

  private tick (): void {
    if (!this.running) return
    this.round++
    const now = this.now()
    this.self = { ...this.self, heartbeat: this.self.heartbeat + 1 }
    let next = { ...this.members, [this.self.id]: this.self }
    const { marks, blindMs } = this.detector.verdicts(next, this.self.id, now)
    if (blindMs >= this.o.suspectAfterMs / 2) {
      const what = blindMs === Infinity ? 'the clock went backwards' : `this node could not watch its peers for ${(blindMs / 1000).toFixed(1)} s (paused, overloaded, or its clock jumped)`
      this.log.warn(`${what}: every member gets a fresh suspicion period rather than a verdict from a stale view`)
    }
    // Nor a downing decision: the view this node had before it went blind is stale.
    if (blindMs > 0) this.stableSince = now
    for (const [id, status] of marks) next = markStatus(next, id, status)
    this.commit(this.members, next)
    this.down(now)
    const peers = shuffle(this.peers()).slice(0, this.o.fanout)
    // Now and then, one dead member too: it may be back after a partition healed (or
    // another node may answer at its address: the one that replaced it).
    const dead = Object.values(this.members).filter((m) => m.status === 'dead')
    if (dead.length > 0 && this.round % 10 === 0) peers.push(dead[this.round % dead.length])
    for (const m of peers) void this.exchange(m, 'mesh.gossip')
    this.probes.prune(now)
    this.probeBudget = this.o.maxNewPerFrame
    void this.probeDue(this.o.maxNewPerFrame)
  }

  /** Remove the dead members if the downing strategy lets this side (see downing.ts). */
  private down (now: number): void {
    const view: DowningView = { table: this.members, self: this.self.id, stableForMs: now - this.stableSince }
    const d = decideDowning({ ...view, lease: this.c.lease?.round(view, this.downing) }, this.downing)
    if (d.kind === 'down') {
      if (this.downing.strategy === 'lease') this.c.lease?.downed(d.ids)
      this.downingSaid = ''
      this.log.info(`downing ${d.ids.join(', ')} (${d.reason}): they no longer count; one that comes back joins as a new incarnation`)
      let next = this.members
      for (const id of d.ids) next = markStatus(next, id, 'left')
      this.commit(this.members, next)
      this.events.emit('downed', { ids: d.ids, strategy: this.downing.strategy, reason: d.reason })
    } else if (d.kind === 'hold' && this.downingSaid !== d.reason) {
      this.downingSaid = d.reason
      this.log.warn(`downing: ${d.reason}`)
      this.events.emit('holding', { strategy: this.downing.strategy, reason: d.reason })
    } else if (d.kind === 'none') {
      this.downingSaid = ''
    }
  }

  private retrySeeds (): void {
    const live = new Set(this.peers().map((m) => m.address))
    for (const s of this.otherSeeds()) if (!live.has(s)) void this.exchange({ address: s }, 'mesh.join')
  }

  private otherSeeds (): string[] {
    const seeds = typeof this.o.seeds === 'function' ? this.o.seeds() : this.o.seeds
    return [...new Set(seeds)].filter((s) => s !== this.self.address)
  }

  private peers (): Member[] {
    return Object.values(this.members).filter((m) => m.id !== this.self.id && (m.status === 'alive' || m.status === 'suspect'))
  }

  /**
   * Push our table to `target.address` and hear its answer. The member that answers
   * speaks for itself when its entry has the address we dialed. `ok`: the member we meant
   * (or, for a seed, anyone) answered; `other`: another member answers at that address.
   */
  private async exchange (target: { address: string, id?: string }, method: 'mesh.join' | 'mesh.gossip', timeoutMs?: number, evenIfBusy = false): Promise<Outcome> {
    const { address } = target
    if (this.busy.has(address) && !evenIfBusy) return 'busy'
    this.busy.add(address)
    try {
      const conn = await this.c.transport.peer(address)
      const answer = await conn.call(method, { from: this.self.id, table: this.members }, { timeoutMs: timeoutMs ?? this.o.gossipIntervalMs * 5 })
      const frame = checkFrame(answer, `the answer to ${method} from ${address}`, this.o.maxMembers)
      const speaker = frame.table[frame.from].address === address ? frame.from : undefined
      this.hear(frame, speaker, `${frame.from} at ${address}`)
      if (speaker !== undefined && Object.hasOwn(this.members, speaker)) this.contacts.set(speaker, this.now())
      return target.id === undefined || target.id === speaker ? 'ok' : 'other'
    } catch (err) {
      this.log.debug(`${method} to ${address} failed: ${errorMessage(err)}`)
      return 'failed'
    } finally {
      this.busy.delete(address)
    }
  }
}

/** The host of `host:port`, as a peer's connection shows it (an IPv4-mapped IPv6 host as plain IPv4). */
function hostOf (address: string): string {
  return splitAddress(address).host.toLowerCase().replace(/^::ffff:/, '')
}

/** Waits for `p`, or `ms` at most (`p` goes on in the background). */
async function within (ms: number, p: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([p, new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })])
  clearTimeout(timer)
}

function shuffle<T> (items: T[]): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]]
  }
  return a
}
