/**
 * The membership behind `membership()` (see index.ts): SWIM failure detection with
 * Lifeguard's refinements (swim.ts runs a protocol period), changes piggybacked as
 * deltas (broadcasts.ts), a full push-pull exchange now and then to repair, and the sense
 * checks of hear.ts on every entry received, whatever brought it. This file is the I/O,
 * the timers and the table; the decisions are in the pure parts (hear.ts, table.ts,
 * suspicion.ts, health.ts, rotation.ts, probes.ts, downing.ts).
 */
import { EventEmitter } from 'node:events'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import { call, serve } from '../protocol/table'
import { mesh } from '../protocol/mesh'
import { dialableAddress, splitAddress } from '../address'
import { DeltaQueue, retransmitLimit, type Delta } from './broadcasts'
import { decideDowning, defaultDowning, membershipSignature, type DowningPolicy, type DowningView } from './downing'
import { hear, type Refusal } from './hear'
import { LocalHealth } from './health'
import { membershipDefaults, type MembershipInit } from './config'
import type { Membership, MembershipComponents } from './index'
import { Probes, type ProbeTarget } from './probes'
import { fanoutTargets, ProbeRing, shuffle } from './rotation'
import { realScheduler, type Scheduler, type Timer } from './scheduler'
import { checkAck, checkFrame, checkPingReqAnswer, gossipPayload, pingPayload, pingReqPayload, type Ack, type GossipFrame, type Ping, type PingReq, type PingReqAnswer } from './schema'
import { expectedConfirmations, Suspicions } from './suspicion'
import { fenceWindowMs } from './fence'
import { changedIds, mergeMember, markStatus, replacementOf, retireReplaced } from './table'
import { probeRound, type SwimHost } from './swim'
import { UNHEALTHY_MAX_CHARS, type InstanceSummary, type Member, type MembershipEvents, type MemberTable } from './types'

type Outcome = 'ok' | 'other' | 'failed' | 'busy'
export type PingOutcome = 'ack' | 'other' | 'failed'

export type MembershipOptions = Required<Omit<MembershipInit, 'seeds'>> & Pick<MembershipInit, 'seeds'>

export class GossipMembership implements Membership, SwimHost {
  readonly events = new EventEmitter<MembershipEvents>()
  readonly o: MembershipOptions
  readonly clock: Scheduler
  readonly random: () => number
  readonly health: LocalHealth
  readonly ring: ProbeRing
  private readonly log: Logger
  private self!: Member
  private members: MemberTable = {}
  /** Member id -> the highest incarnation it gave this node itself (see `hear`). */
  private direct: ReadonlyMap<string, number> = new Map()
  private readonly suspicions: Suspicions
  private readonly queue = new DeltaQueue()
  private readonly probes: Probes
  private readonly busy = new Set<string>()
  /** Member id -> last message with it, either way; members of the table only, so it is bounded by it. */
  private readonly contacts = new Map<string, number>()
  /** Why a member was last marked suspect or dead here, for the log line that says so. */
  private readonly why = new Map<string, string>()
  private readonly notes = new Map<string, { at: number, suppressed: number }>()
  /** Probes this node may still start this round: what hostile frames can make it dial is bounded per round. */
  private probeBudget = 0
  private timers: Timer[] = []
  private running = false
  private registered = false
  private probing = false
  /** Until when a caller needs this node in touch with a majority by itself (`keepInTouch`). */
  private inTouchUntil = -Infinity
  private round = 0
  private nextPushPullAt = 0
  /** Members were heard of that there was no room to confirm: ask for them again once the room is back. */
  private untaken = false
  /** A member that holds more entries than this node (see `compare`), and when this node may next catch up with one. */
  private behind?: string
  private catchUpAt = 0
  /** Entries in the table (merges never remove one). */
  private size = 0
  private downing: DowningPolicy
  /** The membership signature (see downing.ts) and since when it has been as it is. */
  private signature = ''
  private signatureStale = false
  private stableSince = 0
  /** The last downing hold or wait logged, so each is said once. */
  private downingSaid = ''

  constructor (init: MembershipInit, private readonly c: MembershipComponents) {
    this.o = { ...membershipDefaults, ...init }
    this.clock = c.scheduler ?? realScheduler(c.now ?? Date.now)
    this.random = c.random ?? Math.random
    this.log = c.log
    this.downing = defaultDowning(this.o.deadAfterMs)
    this.health = new LocalHealth({ max: this.o.maxLocalHealth, periodMs: this.o.gossipIntervalMs })
    this.ring = new ProbeRing(this.random)
    this.suspicions = new Suspicions({ minMs: this.o.suspectAfterMs, maxMs: this.o.deadAfterMs })
    this.probes = new Probes({ max: this.o.maxUnconfirmed, retryMs: this.o.seedRetryMs, maxRetryMs: 60_000, forgetAfterMs: Math.max(30_000, 4 * this.o.deadAfterMs) })
  }

  get id (): string { return this.c.self.id }
  get address (): string { return this.self?.address ?? '' }
  get selfId (): string { return this.self.id }
  get isRunning (): boolean { return this.running }
  table (): MemberTable { return this.members }
  now (): number { return this.clock.now() }

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

  setDrained (drained: boolean): void {
    if (!this.running || (this.self.characteristics.drained === true) === drained) return
    const { drained: _was, ...rest } = this.self.characteristics
    this.updateSelf({ ...this.self, characteristics: drained ? { ...rest, drained: true } : rest, heartbeat: this.self.heartbeat + 1 })
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

  /**
   * How far singleton fencing looks back for this cluster's size (fence.ts), and the least
   * a suspicion lasts: a cut-off node must notice it is cut off before the majority can
   * declare it dead and start its singletons elsewhere.
   */
  fenceWindowMs (): number {
    return fenceWindowMs(this.o, Object.values(this.members).filter((m) => m.status !== 'left').length)
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
    this.size = 1
    this.register()
    this.stableSince = this.now()
    this.signature = membershipSignature(this.members)
    const seeds = this.otherSeeds()
    const answered = (await Promise.all(seeds.map(async (s) => await this.exchange({ address: s }, 'mesh.join', this.o.joinTimeoutMs)))).some((o) => o === 'ok')
    // The seeds told of members this node has not met: meet them before the layers above
    // read the table, so a node that just joined does not take the cluster for two nodes.
    await this.within(this.o.gossipIntervalMs * 5, this.probeDue(this.o.maxUnconfirmed, false))
    if (seeds.length === 0) this.log.info(`no seeds: originating cluster as ${this.self.id}`)
    else if (!answered) this.log.info(`no seed answered (${seeds.join(', ')}): originating cluster as ${this.self.id}; will keep trying them`)
    else this.log.info(`joined through ${seeds.join(', ')}: ${Object.keys(this.members).length} members known`)
    this.health.tick(this.now())
    this.nextPushPullAt = this.now() + this.pushPullEveryMs()
    this.timers.push(this.clock.every(this.o.gossipIntervalMs, () => this.tick()))
    this.timers.push(this.clock.every(this.o.seedRetryMs, () => this.retrySeeds()))
    // Nodes started together often find their seeds not listening yet: try again soon
    // rather than a whole seedRetryMs later, so they merge within a fraction of a second.
    for (const ms of [100, 250, 500, 1000].filter((d) => d < this.o.seedRetryMs)) {
      this.timers.push(this.clock.after(ms, () => { if (this.running) this.retrySeeds() }))
    }
  }

  /** The mesh methods, once this node has its own entry to answer with (handlers stay across a stop and start). */
  private register (): void {
    if (this.registered) return
    this.registered = true
    const t = this.c.transport
    serve(t, mesh, 'mesh.join', (p, ctx) => this.receive('mesh.join', p, ctx.peer.remote), { payload: gossipPayload(this.o.maxMembers) })
    serve(t, mesh, 'mesh.gossip', (p, ctx) => this.receive('mesh.gossip', p, ctx.peer.remote), { payload: gossipPayload(this.o.maxMembers) })
    serve(t, mesh, 'mesh.ping', (p, ctx) => this.answerPing(p, ctx.peer.remote), { payload: pingPayload(this.o.maxDeltasPerMessage) })
    serve(t, mesh, 'mesh.ping-req', async (p, ctx) => await this.answerPingReq(p, ctx.peer.remote), { payload: pingReqPayload(this.o.maxDeltasPerMessage) })
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    for (const t of this.timers) t.cancel()
    this.timers = []
    this.updateSelf({ ...this.self, status: 'left', heartbeat: this.self.heartbeat + 1 })
    const peers = this.peers()
    const bye = [{ e: this.self }]
    const told = await Promise.all(peers.map(async (m) => await this.ping(m, this.o.leaveTimeoutMs, bye)))
    this.log.info(`left the cluster (told ${told.filter((o) => o === 'ack').length} of ${peers.length} peers)`)
  }

  /**
   * A peer called with a whole table (join, push-pull): check its frame, believe what can
   * be believed, answer with ours. Its word about itself counts as its own when it calls
   * from the host this node knows it at; otherwise it is hearsay until this node calls it
   * back.
   */
  private receive (method: string, payload: unknown, remote: string): GossipFrame {
    const frame = checkFrame(payload, `payload of ${method}`, this.o.maxMembers)
    const speaker = this.caller(frame.from, remote, method)
    this.hear(frame.from, frame.table, speaker, `${frame.from} (calling from ${remote})`)
    return { from: this.self.id, table: this.members }
  }

  /** mesh.ping: hear the changes it carries, answer with ours (and our own entry if the prober's is older). */
  private answerPing (p: Ping, remote: string): Ack {
    const speaker = this.caller(p.from, remote, 'mesh.ping')
    if (p.to !== this.self.id) throw new OriginError('E_NOT_FOUND', `this is ${this.self.id}, not ${p.to}`, { id: this.self.id })
    this.hearDeltas(p.from, p.deltas, undefined, speaker, `${p.from} (calling from ${remote})`)
    this.compare(p.n, p.from)
    const ack: Ack = { from: this.self.id, deltas: this.outgoing(p.from), n: this.size }
    if (!Object.hasOwn(this.members, p.from)) ack.stranger = true
    const have = p.have
    if (have === undefined || have.incarnation < this.self.incarnation || (have.incarnation === this.self.incarnation && have.heartbeat < this.self.heartbeat)) ack.self = this.self
    return ack
  }

  /**
   * mesh.ping-req: probe a member for the caller (SWIM's indirect probe) and say whether it
   * acked; false is Lifeguard's nack (this node ran, the member did not answer). Only a
   * member of this node's table, at the address it has here: a peer cannot make this node
   * dial anything else.
   */
  private async answerPingReq (p: PingReq, remote: string): Promise<PingReqAnswer> {
    const speaker = this.caller(p.from, remote, 'mesh.ping-req')
    this.hearDeltas(p.from, p.deltas, undefined, speaker, `${p.from} (calling from ${remote})`)
    const m = Object.hasOwn(this.members, p.target.id) ? this.members[p.target.id] : undefined
    const known = m !== undefined && m.address === p.target.address && m.id !== this.self.id && (m.status === 'alive' || m.status === 'suspect')
    const acked = known && this.running && (await this.ping(m, this.health.scale(this.o.probeTimeoutMs))) === 'ack'
    return { from: this.self.id, acked, deltas: this.outgoing(p.from) }
  }

  /** Checks common to every call; the caller's id when it speaks for itself (see `receive`). */
  private caller (from: string, remote: string, method: string): string | undefined {
    if (this.self === undefined) throw new OriginError('E_NOT_READY', 'membership has not started yet')
    if (from === this.self.id) throw new OriginError('E_PAYLOAD_INVALID', `payload of ${method} is invalid: the sender says it is this node (${from})`)
    const known = Object.hasOwn(this.members, from) ? this.members[from] : undefined
    if (known !== undefined && this.running) this.contacts.set(from, this.now())
    return known !== undefined && hostOf(known.address) === hostOf(remote) ? from : undefined
  }

  /**
   * `member` holds `n` entries: more than this node (entries are never removed, so a
   * count is a cheap digest) means news this node missed, a join whose deltas ran out
   * before reaching it. A push-pull with that member follows, at most one a second.
   */
  private compare (n: number | undefined, member: string): void {
    if (n !== undefined && n > this.size && Object.hasOwn(this.members, member)) this.behind = member
  }

  /** Changes for a message to `to`: its own entry first while it is suspect here (so it refutes at once), then the queue's. */
  outgoing (to: string): Delta[] {
    const m = Object.hasOwn(this.members, to) ? this.members[to] : undefined
    const buddy = m !== undefined && (m.status === 'suspect' || m.status === 'dead') ? [this.queue.get(to) ?? { e: m }] : []
    const n = this.size
    const queued = this.queue.take(this.o.maxDeltasPerMessage - buddy.length, retransmitLimit(this.o.retransmitMult, n))
    return buddy.length === 0 ? queued : [...buddy, ...queued.filter((d) => d.e.id !== to)]
  }

  /** Changes received (and a member's own entry, from an ack): believed as a small table. */
  private hearDeltas (from: string, deltas: Delta[], own: Member | undefined, speaker: string | undefined, source: string): void {
    this.hearBatch([{ from, deltas, own, speaker }], source)
  }

  /**
   * Changes from one or more messages (and members' own entries, from acks), believed as
   * one small table: one commit for a batch of acks (a joining node meeting dozens of
   * members at once) rather than one each.
   */
  private hearBatch (batch: Array<{ from: string, deltas: Delta[], own?: Member, speaker?: string }>, source: string): void {
    const incoming: MemberTable = {}
    const by = new Map<string, string>()
    const speakers = new Set<string>()
    for (const b of batch) {
      if (b.speaker !== undefined) speakers.add(b.speaker)
      for (const d of b.own === undefined ? b.deltas : [...b.deltas, { e: b.own }]) {
        const e = d.e
        if (e.id === '__proto__') continue
        const had = Object.hasOwn(incoming, e.id) ? incoming[e.id] : undefined
        incoming[e.id] = had === undefined ? e : mergeMember(had, e)
        if (e.status === 'suspect') by.set(e.id, d.by ?? b.from)
      }
    }
    if (Object.keys(incoming).length === 0) return
    this.hear(batch[0].from, incoming, speakers, source, by)
    // A suspicion this node already holds, said by one more member: a confirmation.
    const n = this.size
    for (const [id, who] of by) {
      const m = this.members[id]
      if (m === undefined || m.status !== 'suspect' || m.incarnation !== incoming[id].incarnation || id === this.self.id) continue
      if (this.suspicions.suspect(id, m.incarnation, who, this.now(), expectedConfirmations(this.o.suspicionConfirmations, n), this.fenceWindowMs())) this.queue.add(m, who)
    }
  }

  /** `dialed`: the table is the answer of a member this node called at its address (a join, a push-pull). */
  private hear (from: string, incoming: MemberTable, speaker: string | ReadonlySet<string> | undefined, source: string, by?: ReadonlyMap<string, string>, dialed = false): void {
    const now = this.now()
    const before = this.members
    const seen = Object.hasOwn(incoming, this.self.id) ? incoming[this.self.id] : undefined
    const since = now - this.o.suspectAfterMs
    const fresh = { has: (id: string) => (this.contacts.get(id) ?? -Infinity) >= since }
    const speaking = typeof speaker === 'string' ? { speaker } : { speakers: speaker }
    const r = hear({ self: this.self, table: before, direct: this.direct }, incoming, { ...speaking, fresh, now }, this.o)
    if (r.knowledge.self !== this.self && seen !== undefined) {
      const after = `now incarnation ${r.knowledge.self.incarnation}`
      this.log.info(seen.status === 'alive'
        ? `refuting: ${source} has an entry for me I did not write (incarnation ${seen.incarnation}); ${after}`
        : `refuting: the cluster says I am ${seen.status} (${source}, at incarnation ${seen.incarnation}); ${after}`)
      // Lifeguard: being suspected is a sign this node is the slow one.
      if (seen.status !== 'alive') this.health.raise()
    }
    this.self = r.knowledge.self
    this.direct = r.knowledge.direct
    this.commit(before, r.knowledge.table, by ?? new Map(), from)
    const queued = this.noteUnknown(r.unknown, from, now, source, dialed ? this.o.maxUnconfirmed : this.o.maxNewPerFrame) + this.noteRefused(r.refused, now, source)
    if (queued > 0 && this.running) void this.probeDue(this.o.maxNewPerFrame)
  }

  /**
   * Queue members heard of for a direct contact, at most `limit` from a frame (the sender
   * itself first): `maxNewPerFrame`, or as many as may wait (`maxUnconfirmed`) from the
   * answer of a member this node dialed itself, so a node joining a large cluster meets
   * it in a few batches. Contacts started per round stay bounded either way.
   */
  private noteUnknown (unknown: ProbeTarget[], sender: string, now: number, source: string, limit: number): number {
    if (unknown.length === 0) return 0
    const own = unknown.find((u) => u.id === sender)
    const others = shuffle(unknown.filter((u) => u !== own), this.random).slice(0, limit - (own === undefined ? 0 : 1))
    let taken = 0
    if (own !== undefined && this.probes.heard(own, now, true)) taken++
    for (const u of others) if (this.probes.heard(u, now)) taken++
    if (taken < unknown.length) {
      this.untaken = true
      this.note('unknown', `${source} tells of ${unknown.length} members this node has not met; ${unknown.length - taken} not taken (at most ${limit} a frame, ${this.o.maxUnconfirmed} waiting at once): a member counts once this node has talked to it`)
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
   * `maxNewPerFrame` a round in all), asking each for its own entry; resolves when every
   * one answered or failed.
   */
  private async probeDue (limit: number, budgeted = true): Promise<void> {
    if (!this.running) return
    const targets = this.probes.due(this.now(), budgeted ? Math.min(limit, this.probeBudget) : limit)
    if (budgeted) this.probeBudget -= targets.length
    const timeoutMs = this.o.gossipIntervalMs * 5
    const answers = await Promise.all(targets.map(async (t) => await this.callPing(t, timeoutMs, undefined, true)))
    const acked = answers.filter((a): a is { ack: Ack, speaker?: string } => a !== undefined)
    if (acked.length > 0) this.heardAck(targets[0], timeoutMs, undefined, acked)
    for (const [i, t] of targets.entries()) {
      if (answers[i]?.speaker === t.id) this.probes.succeeded(t.id, this.now())
      else this.probes.failed(t.id, this.now())
    }
  }

  private updateSelf (self: Member): void {
    this.self = self
    this.commit(this.members, { ...this.members, [self.id]: self }, new Map(), self.id)
  }

  /**
   * Make `proposed` the table: queue what changed for the others (with who suspected a
   * suspect), keep the suspicions in step with the statuses, tell the layers above.
   */
  private commit (before: MemberTable, proposed: MemberTable, by: ReadonlyMap<string, string> = new Map(), from = this.self.id): void {
    if (proposed === before) return
    const next = retireReplaced(proposed)
    const changed = changedIds(before, next)
    this.members = next
    if (changed.length === 0) return
    this.signatureStale = true
    const now = this.now()
    for (const id of changed) if (!Object.hasOwn(before, id)) this.size++
    const n = this.size
    for (const id of changed) {
      const m = next[id]
      this.queue.add(m, m.status === 'suspect' ? by.get(id) ?? from : undefined)
      if (id === this.self.id) continue
      if (m.status === 'suspect') this.suspicions.suspect(id, m.incarnation, by.get(id) ?? from, now, expectedConfirmations(this.o.suspicionConfirmations, n), this.fenceWindowMs())
      else this.suspicions.clear(id)
      if (before[id] === undefined) this.ring.add(id)
      this.describeChange(before[id], m, next, from)
    }
    this.events.emit('change', next)
  }

  /** `no answer for 1.2 s; <reason>`, the silence counted from the last message with the member either way. */
  private silence (id: string, reason: string): string {
    const at = this.contacts.get(id)
    return at === undefined ? reason : `no answer for ${((this.now() - at) / 1000).toFixed(1)} s; ${reason}`
  }

  private describeChange (was: Member | undefined, is: Member, table: MemberTable, from: string): void {
    const c = is.characteristics
    if (was === undefined) {
      this.log.info(`${is.id} at ${is.address} is ${is.status} (${c.cpus} cpus, ${c.memoryMb} MB, ${c.arch})`)
    } else if (was.status !== is.status) {
      const successor = was.status === 'dead' && is.status === 'left' ? replacementOf(table, is) : undefined
      const why = successor !== undefined
        ? `replaced: ${successor.id} answers at its address ${is.address}`
        : is.status === 'suspect' || is.status === 'dead' ? this.silence(is.id, this.why.get(is.id) ?? `${from} says so`) : ''
      this.why.delete(is.id)
      this.log.info(`${is.id} is ${is.status}${why === '' ? '' : ` (${why})`}`)
    }
  }

  private tick (): void {
    if (!this.running) return
    this.round++
    const now = this.now()
    const blindMs = this.health.tick(now)
    if (blindMs > 0) {
      const what = blindMs === Infinity ? 'the clock went backwards' : `this node could not watch its peers for ${(blindMs / 1000).toFixed(1)} s (paused, overloaded, or its clock jumped)`
      this.log.warn(`${what}: every suspicion gets a fresh period rather than a verdict from a stale view`)
      this.suspicions.extend(blindMs, now)
      // Nor a downing decision: the view this node had before it went blind is stale.
      this.stableSince = now
    }
    this.judge(now)
    if (this.signatureStale) {
      this.signatureStale = false
      const signature = membershipSignature(this.members)
      if (signature !== this.signature) {
        this.signature = signature
        this.stableSince = now
      }
    }
    this.down(now)
    // The probe picks its member before its first await: `ring.last` is this period's.
    let probed: string | undefined
    if (!this.probing) {
      this.probing = true
      void probeRound(this).finally(() => { this.probing = false })
      probed = this.ring.last
    }
    for (const m of fanoutTargets(this.peers(), probed, this.fanoutNow(now), this.random)) void this.ping(m, this.health.scale(this.o.gossipIntervalMs))
    this.pushPull(now)
    this.probes.prune(now)
    this.probeBudget = this.o.maxNewPerFrame
    void this.probeDue(this.o.maxNewPerFrame)
  }

  /**
   * Pings this period besides the probe (to other members than the probe's):
   * - `fanout` while changes are queued, which they carry: a change reaches the cluster in a
   *   few periods instead of waiting for probes to carry it (memberlist gossips likewise
   *   only when it has broadcasts);
   * - 2 × `fanout` while a caller needs this node in touch with a majority (`keepInTouch`:
   *   a singleton runs here or waits to). With the probe and the one probe a period others
   *   send it on average, that is the 2 × (1 + `fanout`) contacts a period the fence window
   *   is reckoned with (fence.ts);
   * - none otherwise. An idle cluster then sends one probe a period per node, not four: at
   *   50 nodes on one machine the empty pings alone had taken most of its CPU.
   */
  private fanoutNow (now: number): number {
    if (now < this.inTouchUntil) return 2 * this.o.fanout
    return this.queue.size > 0 ? this.o.fanout : 0
  }

  keepInTouch (forMs: number): void {
    this.inTouchUntil = Math.max(this.inTouchUntil, this.now() + forMs)
  }

  /** Suspicions that ran out unrefuted: dead. */
  private judge (now: number): void {
    const due = this.suspicions.due(now)
    if (due.length === 0) return
    let next = this.members
    for (const s of due) {
      this.suspicions.clear(s.id)
      const m = next[s.id]
      if (m === undefined || m.status !== 'suspect' || m.incarnation !== s.incarnation) continue
      this.why.set(s.id, `suspect for ${(s.heldMs / 1000).toFixed(1)} s, ${s.confirmations} other member${s.confirmations === 1 ? '' : 's'} confirming, no refutation`)
      next = markStatus(next, s.id, 'dead')
    }
    this.commit(this.members, next)
  }

  /**
   * A full table exchange with one random live member every `pushPullEveryMs`, repairing
   * what deltas missed; and now and then with one dead member, which may be back after a
   * partition healed (or another node may answer at its address: the one that replaced it).
   */
  private pushPull (now: number): void {
    // After a join into a large cluster, the rest of the members come in batches: another
    // exchange as soon as the last batch is confirmed, rather than at the next repair.
    const more = this.untaken && this.probes.pending === 0
    const behind = this.behind === undefined || now < this.catchUpAt ? undefined : this.member(this.behind)
    this.behind = undefined
    if (behind !== undefined && (behind.status === 'alive' || behind.status === 'suspect')) {
      this.catchUpAt = now + 1000
      void this.exchange(behind, 'mesh.gossip')
    } else if (now >= this.nextPushPullAt || more) {
      this.untaken = false
      this.nextPushPullAt = now + this.pushPullEveryMs()
      const [peer] = shuffle(this.peers(), this.random)
      if (peer !== undefined) void this.exchange(peer, 'mesh.gossip')
    }
    const dead = Object.values(this.members).filter((m) => m.status === 'dead')
    if (dead.length > 0 && this.round % 10 === 0) void this.exchange(dead[Math.floor(this.round / 10) % dead.length], 'mesh.gossip')
  }

  private pushPullEveryMs (): number {
    const n = this.size
    return this.o.pushPullIntervalMs * (n > 32 ? Math.ceil(Math.log2(n / 32)) + 1 : 1)
  }

  /** No ack from `target` at `incarnation`, directly or through others: suspect (or one more confirmation). */
  suspect (id: string, incarnation: number, reason: string): void {
    const m = Object.hasOwn(this.members, id) ? this.members[id] : undefined
    if (m === undefined || m.incarnation !== incarnation || id === this.self.id) return
    if (m.status === 'alive') {
      this.why.set(id, reason)
      this.commit(this.members, markStatus(this.members, id, 'suspect'), new Map([[id, this.self.id]]))
      // Lifeguard: tell the member itself, so a live one refutes at once (its entry goes first, see `outgoing`).
      void this.ping(this.members[id], this.health.scale(this.o.gossipIntervalMs))
    } else if (m.status === 'suspect') {
      const n = this.size
      if (this.suspicions.suspect(id, m.incarnation, this.self.id, this.now(), expectedConfirmations(this.o.suspicionConfirmations, n), this.fenceWindowMs())) this.queue.add(m, this.self.id)
    }
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

  /** Members to talk to: alive or suspect, not this node. */
  peers (): Member[] {
    return Object.values(this.members).filter((m) => m.id !== this.self.id && (m.status === 'alive' || m.status === 'suspect'))
  }

  member (id: string): Member | undefined {
    return Object.hasOwn(this.members, id) ? this.members[id] : undefined
  }

  /**
   * mesh.ping `target` with the changes due (or `deltas`), and hear its ack. `ack`: the
   * member we meant answered (at the address it has here, or for a member only heard of,
   * at the address we dialed, with its own entry when `own`); `other`: another member
   * answers there; `failed`: no answer in `timeoutMs`.
   */
  async ping (target: { id: string, address: string }, timeoutMs: number, deltas?: Delta[], own = false): Promise<PingOutcome> {
    const answer = await this.callPing(target, timeoutMs, deltas, own)
    if (answer === undefined) return 'failed'
    this.heardAck(target, timeoutMs, deltas, [answer])
    return answer.speaker !== undefined ? 'ack' : 'other'
  }

  /**
   * mesh.ping `target`; the ack and whether the member we meant gave it: at the address
   * it has here or, for a member only heard of (`own`: asking for its own entry), at the
   * address we dialed. Nothing heard yet (see `heardAck`).
   */
  private async callPing (target: { id: string, address: string }, timeoutMs: number, deltas?: Delta[], own = false): Promise<{ ack: Ack, speaker?: string } | undefined> {
    const { id, address } = target
    try {
      const conn = await this.c.transport.peer(address)
      const known = own ? undefined : this.member(id)
      const payload: Ping = { from: this.self.id, to: id, n: this.size, deltas: deltas ?? this.outgoing(id) }
      if (known !== undefined) payload.have = { incarnation: known.incarnation, heartbeat: known.heartbeat }
      const ack = checkAck(await call(conn, mesh, 'mesh.ping', payload, { timeoutMs }), `the ack from ${address}`, this.o.maxDeltasPerMessage)
      const entry = ack.self ?? this.member(ack.from)
      return { ack, speaker: ack.from === id && entry?.address === address ? id : undefined }
    } catch (err) {
      this.log.debug(`mesh.ping to ${id} at ${address} failed: ${errorMessage(err)}`)
      return undefined
    }
  }

  /** Hear acks (one, or a batch of contacts made at once), count the contacts, answer strangers. */
  private heardAck (target: { id: string, address: string }, timeoutMs: number, deltas: Delta[] | undefined, answers: Array<{ ack: Ack, speaker?: string }>): void {
    this.hearBatch(answers.map(({ ack, speaker }) => ({ from: ack.from, deltas: ack.deltas, own: ack.self, speaker })), answers.length === 1 ? `${answers[0].ack.from} at ${target.address}` : `${answers.length} members met`)
    for (const { ack, speaker } of answers) {
      if (speaker === undefined || !Object.hasOwn(this.members, speaker)) continue
      this.contacts.set(speaker, this.now())
      this.compare(ack.n, speaker)
      // It has not met this node (it joined after the news of this node went round): say
      // who this node is, and it will call back to confirm.
      const m = this.members[speaker]
      if (ack.stranger === true && deltas === undefined && this.running) void this.ping(m, timeoutMs, [{ e: this.self }])
    }
  }

  /** Ask `relay` to probe `target` (mesh.ping-req): `ack`, `nack` (it tried, no answer), or `none` (the relay did not answer). */
  async pingReq (relay: Member, target: Member, timeoutMs: number): Promise<'ack' | 'nack' | 'none'> {
    try {
      const conn = await this.c.transport.peer(relay.address)
      const payload: PingReq = { from: this.self.id, target: { id: target.id, address: target.address }, deltas: this.outgoing(relay.id) }
      const answer = checkPingReqAnswer(await call(conn, mesh, 'mesh.ping-req', payload, { timeoutMs }), `the answer to mesh.ping-req from ${relay.address}`, this.o.maxDeltasPerMessage)
      const speaker = answer.from === relay.id ? relay.id : undefined
      this.hearDeltas(answer.from, answer.deltas, undefined, speaker, `${answer.from} at ${relay.address}`)
      if (speaker !== undefined) this.contacts.set(speaker, this.now())
      if (answer.acked && Object.hasOwn(this.members, target.id)) this.contacts.set(target.id, this.now())
      return answer.acked ? 'ack' : 'nack'
    } catch (err) {
      this.log.debug(`mesh.ping-req to ${relay.id} about ${target.id} failed: ${errorMessage(err)}`)
      return 'none'
    }
  }

  /**
   * Push our table to `target.address` and hear its answer. The member that answers
   * speaks for itself when its entry has the address we dialed. `ok`: the member we meant
   * (or, for a seed, anyone) answered; `other`: another member answers at that address.
   */
  private async exchange (target: { address: string, id?: string }, method: 'mesh.join' | 'mesh.gossip', timeoutMs?: number): Promise<Outcome> {
    const { address } = target
    if (this.busy.has(address)) return 'busy'
    this.busy.add(address)
    try {
      const conn = await this.c.transport.peer(address)
      const answer = await call(conn, mesh, method, { from: this.self.id, table: this.members }, { timeoutMs: timeoutMs ?? this.o.gossipIntervalMs * 5 })
      const frame = checkFrame(answer, `the answer to ${method} from ${address}`, this.o.maxMembers)
      const speaker = frame.table[frame.from].address === address ? frame.from : undefined
      this.hear(frame.from, frame.table, speaker, `${frame.from} at ${address}`, undefined, speaker !== undefined)
      if (speaker !== undefined && Object.hasOwn(this.members, speaker)) this.contacts.set(speaker, this.now())
      return target.id === undefined || target.id === speaker ? 'ok' : 'other'
    } catch (err) {
      this.log.debug(`${method} to ${address} failed: ${errorMessage(err)}`)
      return 'failed'
    } finally {
      this.busy.delete(address)
    }
  }

  /** Waits for `p`, or `ms` at most (`p` goes on in the background). */
  private async within (ms: number, p: Promise<unknown>): Promise<void> {
    let timer: Timer | undefined
    await Promise.race([p, new Promise<void>((resolve) => { timer = this.clock.after(ms, resolve) })])
    timer?.cancel()
  }
}

/** The host of `host:port`, as a peer's connection shows it (an IPv4-mapped IPv6 host as plain IPv4). */
function hostOf (address: string): string {
  return splitAddress(address).host.toLowerCase().replace(/^::ffff:/, '')
}
