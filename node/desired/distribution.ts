/**
 * Distribution: how a version travels between nodes. A hub serves the objects of the
 * commit it runs (`spec.objects`, in pieces of bounded size: transfer.ts) and, once it
 * applied a new one, tells every other live member (`spec.announce`), so nobody waits for
 * gossip. Every other node follows the commit most hubs run (followTarget in state.ts),
 * takes its objects from one of them, checks each against its id, and hands the commit to
 * admission; a hub that failed it is retried with backoff, not in a loop. The mesh methods
 * of the spec layer are served here.
 */
import type { EventEmitter } from 'node:events'
import { systemClock, type Clock, type Timer } from '../clock'
import { OriginError, errorMessage } from '../errors'
import type { GitStore } from '../git/store'
import type { Hubs } from '../hubs/types'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import { mesh } from '../protocol/mesh'
import { call, serve, stream } from '../protocol/table'
import type { Transport } from '../transport/types'
import { short, type Admission } from './admission'
import type { SpecEvents, SyncResult } from './contract'
import { followTarget } from './state'
import { ObjectAssembler, objectPieces, type ObjectPiece } from './transfer'

/** Wait before taking a commit from a hub again after `failures` failed attempts: doubling from 0.5 s, at most a minute. Pure. */
export function retryDelayMs (failures: number): number {
  return Math.min(500 * 2 ** (failures - 1), 60_000)
}

/** The commits a node keeps failures for: only those the hubs ran lately. */
const MAX_FAILED_COMMITS = 16

export interface DistributionComponents {
  transport: Pick<Transport, 'peer' | 'handle'>
  membership: Pick<Membership, 'id' | 'table'>
  hubs: Pick<Hubs, 'current'>
  store: Pick<GitStore, 'has' | 'importObjects' | 'objectsOf'>
  events: EventEmitter<SpecEvents>
  log: Logger
  admission: Pick<Admission, 'current' | 'lastRejected' | 'left' | 'maxCommitBytes' | 'admitCommit'>
  /** This node's remote, if it has one: while it polls, this node is a source, not a follower. */
  remote?: { polling: () => boolean, sync: () => Promise<SyncResult>, catchUp: (announced?: string) => void }
  /** What the backoff after a failed take is measured on. @default systemClock */
  clock?: Clock
}

export class Distribution {
  private running = false
  private following?: string
  private followTimer?: Timer
  /** Failed attempts to take a commit from a hub, by commit. */
  private readonly failures = new Map<string, { count: number, retryAt: number }>()
  private readonly clock: Clock

  constructor (private readonly c: DistributionComponents) {
    this.clock = c.clock ?? systemClock
  }

  /** The spec layer's mesh methods. */
  serve (): void {
    const { transport: t, admission: a } = this.c
    serve(t, mesh, 'spec.objects', (p) => this.objectBatches(p.commit))
    serve(t, mesh, 'spec.sync', async () => [this.c.remote === undefined
      ? { node: this.c.membership.id, outcome: 'failed', error: 'this node has no git remote' }
      : await this.c.remote.sync()])
    serve(t, mesh, 'spec.announce', (p) => { this.onAnnounce(p.commit, p.from) })
    serve(t, mesh, 'spec.status', () => ({ applied: a.current()?.info, rejected: a.lastRejected() }))
  }

  /** Follow the hubs from now on (a node watching a directory never does). */
  start (): void { this.running = true }

  stop (): void {
    this.running = false
    this.followTimer?.cancel()
    this.followTimer = undefined
  }

  /** Ask every other hub to sync with the remote now. */
  async askHubs (): Promise<SyncResult[]> {
    const { membership: m, hubs } = this.c
    const others = Object.values(m.table()).filter((h) => hubs.current().includes(h.id) && h.id !== m.id)
    const results = await Promise.all(others.map(async (h) => {
      try {
        return await call(await this.c.transport.peer(h.address), mesh, 'spec.sync', undefined, { timeoutMs: 30_000 })
      } catch (err) {
        return [{ node: h.id, outcome: 'failed' as const, error: errorMessage(err) }]
      }
    }))
    return results.flat()
  }

  /** Tell every other live member that this hub now runs `commit`. */
  announce (commit: string): void {
    const self = this.c.membership.id
    for (const m of Object.values(this.c.membership.table())) {
      if (m.id === self || m.status !== 'alive') continue
      void this.c.transport.peer(m.address)
        .then(async (conn) => await call(conn, mesh, 'spec.announce', { commit, from: self }, { timeoutMs: 2000 }))
        .catch((err) => this.c.log.debug(`cannot announce ${short(commit)} to ${m.id}: ${errorMessage(err)}`))
    }
  }

  /** Take the commit the hubs run (or `explicit`, one a hub announced), from a hub, over the mesh. */
  follow (explicit?: { commit: string, hub: string, address: string }): void {
    const { admission: a, membership: m } = this.c
    const target = explicit ?? followTarget(m.table(), this.c.hubs.current(), m.id)
    if (target === undefined || target.commit === a.current()?.version || target.commit === a.lastRejected()?.version) return
    // Gossip can still show a hub on a version this node left: never go back to one on
    // gossip alone (a hub that really goes back announces it).
    if (explicit === undefined && a.left(target.commit)) return
    if (this.following === target.commit) return
    const failed = this.failures.get(target.commit)
    const now = this.clock.now()
    if (failed !== undefined && now < failed.retryAt) {
      if (this.followTimer === undefined) {
        this.followTimer = this.clock.after(failed.retryAt - now, () => { this.followTimer = undefined; if (this.running) this.follow() }).unref()
      }
      return
    }
    this.following = target.commit
    void this.take(target).finally(() => {
      this.following = undefined
      this.follow() // the hubs may have moved on meanwhile
    })
  }

  private async take (target: { commit: string, hub: string, address: string }): Promise<void> {
    try {
      if (!await this.c.store.has(target.commit)) {
        const conn = await this.c.transport.peer(target.address)
        const assembler = new ObjectAssembler(this.c.admission.maxCommitBytes())
        for await (const batch of stream(conn, mesh, 'spec.objects', { commit: target.commit })) for (const piece of batch) assembler.add(piece)
        await this.c.store.importObjects(target.commit, assembler.objects().map((o) => ({ ...o, data: Buffer.from(o.data) })))
        this.c.log.info(`received ${short(target.commit)} from hub ${target.hub} (every object checked against its id)`)
        this.c.events.emit('fetched', { version: target.commit, from: `hub ${target.hub}` })
      }
      this.failures.delete(target.commit)
      await this.c.admission.admitCommit(target.commit)
    } catch (err) {
      const count = (this.failures.get(target.commit)?.count ?? 0) + 1
      const delay = retryDelayMs(count)
      this.failures.set(target.commit, { count, retryAt: this.clock.now() + delay })
      if (this.failures.size > MAX_FAILED_COMMITS) this.failures.delete(this.failures.keys().next().value as string)
      this.c.log.warn(`cannot take spec ${short(target.commit)} from hub ${target.hub} (attempt ${count}; next in ${(delay / 1000).toFixed(1)} s): ${errorMessage(err)}`)
    }
  }

  /** A hub applied a new commit and says so directly. */
  private onAnnounce (commit: string, from: string): void {
    if (!this.running || commit === this.c.admission.current()?.version) return
    // A hub takes it from the announcing hub too (every object is checked against its id),
    // rather than asking the remote again: one fetch from the remote per change, not one per hub.
    const hub = this.c.membership.table()[from]
    if (hub !== undefined) this.follow({ commit, hub: from, address: hub.address })
    else if (this.c.remote?.polling() === true) this.c.remote.catchUp(commit)
  }

  private async * objectBatches (commit: string): AsyncIterable<ObjectPiece[]> {
    if (commit !== this.c.admission.current()?.version) throw new OriginError('E_NOT_FOUND', `this node does not run ${short(commit)}`)
    yield * objectPieces(await this.c.store.objectsOf(commit))
  }
}
