/** The state layer itself: lifecycle, gossip of generations, mesh methods, status. */
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { systemClock } from '../clock'
import { OriginError, errorMessage } from '../errors'
import type { InstanceSummary } from '../membership'
import type { StateSpec } from '../desired/types'
import type { CallContext } from '../transport/types'
import { pack, type ArchiveItem } from './archive'
import type { Ctx } from './context'
import { CopyStore } from './copies'
import { exists, removeTree } from './files'
import { runHook, type HookEnv } from './hook'
import { KeyedLock } from './lock'
import { SeenStore, readMarker, writeMarker } from './meta'
import { StatePaths } from './paths'
import { fetch, prepareState } from './prepare'
import { Replicator } from './replicate'
import { snapshotRound } from './snapshot'
import { replicateDefaults, type CopyResult, type PreparedState, type StateComponents, type StateInit, type StateLayer, type StateStatus } from './types'
import type { FetchRequest, Holdings, OfferRequest } from './wire'
import { serve } from '../protocol/table'
import { mesh } from '../protocol/mesh'

interface Entry {
  spec?: StateSpec
  dir: string
  generation?: number
  note?: string
  running: boolean
  hook?: HookEnv
  replicator?: Replicator
  snapshot?: StateStatus['snapshot']
  lastError?: string
}

/** Transfers a crash interrupted (nothing is under way before start): `state/.tmp-*`, `state-copies/<instance>/.tmp-*`. */
async function removeLeftovers (paths: StatePaths): Promise<void> {
  const temps = async (dir: string): Promise<string[]> => (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('.tmp-')).map((n) => join(dir, n))
  const found = [...await temps(paths.stateRoot)]
  for (const name of await readdir(paths.copiesRoot).catch(() => [] as string[])) found.push(...await temps(join(paths.copiesRoot, name)))
  for (const dir of found) await removeTree(dir).catch(() => {})
}

/** The generation of an instance summary, when it is one (a peer's word: checked). */
function generationOf (s: InstanceSummary | undefined): number | undefined {
  const g: unknown = s?.generation
  return typeof g === 'number' && Number.isInteger(g) && g >= 1 ? g : undefined
}

export class StateNode implements StateLayer {
  private readonly ctx: Ctx
  private readonly entries = new Map<string, Entry>()
  private running = false
  private registered = false
  private readonly onTable = (): void => { this.observeTable() }

  constructor (o: Required<StateInit>, private readonly c: StateComponents) {
    for (const k of ['hookTimeoutMs', 'transferTimeoutMs', 'askTimeoutMs', 'sourceWaitMs', 'pollMs', 'persistDelayMs'] as const) {
      if (!Number.isFinite(o[k]) || o[k] < 0) throw new OriginError('E_CONFIG_INVALID', `state: ${k} must be a non-negative number of milliseconds, not ${String(o[k])}`, { field: k })
    }
    const paths = new StatePaths(o.dataDir)
    const clock = c.clock ?? systemClock
    const now = (): number => clock.now()
    this.ctx = { o, c, self: c.membership.id, clock, now, paths, copies: new CopyStore(paths, now), seen: new SeenStore(paths, o.persistDelayMs, c.log, clock), lock: new KeyedLock() }
  }

  async start (): Promise<void> {
    if (this.running) return
    const { paths } = this.ctx
    await mkdir(paths.metaDir, { recursive: true, mode: 0o700 })
    await mkdir(paths.copiesRoot, { recursive: true, mode: 0o700 })
    await this.ctx.seen.load()
    await removeLeftovers(paths)
    this.register()
    this.running = true
    this.c.membership.events.on('change', this.onTable)
    this.observeTable()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.c.membership.events.off('change', this.onTable)
    // The supervisor detaches what it stops; anything left keeps its last snapshot.
    await Promise.all([...this.entries.values()].map(async (e) => await e.replicator?.stop(false)))
    await this.ctx.seen.flush()
  }

  /** Remember the highest generation each other member publishes for each instance. */
  private observeTable (): void {
    for (const m of Object.values(this.c.membership.table())) {
      if (m.id === this.ctx.self) continue
      for (const [instance, s] of Object.entries(m.instances ?? {})) {
        const g = generationOf(s)
        if (g !== undefined) this.ctx.seen.observe(instance, g, m.id)
      }
    }
  }

  async prepare (instance: string, spec: StateSpec | undefined, o: { once?: boolean } = {}): Promise<PreparedState> {
    if (!this.running) throw new OriginError('E_NOT_READY', 'the state layer is not started')
    return await this.ctx.lock.run(instance, async () => {
      this.observeTable()
      const p = await prepareState(this.ctx, instance, spec, o.once === true)
      const e = this.entry(instance, spec)
      e.generation = p.generation
      e.note = p.note
      e.spec = spec
      // Loud when state was left behind or set aside: that is what an operator must not miss.
      const loud = p.movedAside !== undefined || (p.outcome === 'empty' && p.generation > 1) || p.note.includes('not reachable')
      this.c.log[loud ? 'warn' : 'info'](`${instance}: ${p.note}`)
      return p
    })
  }

  attach (instance: string, spec: StateSpec | undefined, hook: HookEnv): void {
    const e = this.entry(instance, spec)
    e.spec = spec
    e.running = true
    e.hook = hook
    if (spec?.mode === 'replicate' && e.replicator === undefined) {
      const s = spec
      e.replicator = new Replicator(spec.intervalMs ?? replicateDefaults.intervalMs, async (useHook) => await snapshotRound(this.ctx, instance, s, e.hook, useHook, e), this.ctx.clock)
      e.replicator.start()
    }
  }

  async detach (instance: string, o: { graceful: boolean }): Promise<void> {
    const e = this.entries.get(instance)
    if (e === undefined) return
    e.running = false
    const r = e.replicator
    e.replicator = undefined
    await this.ctx.lock.run(instance, async () => {
      const marker = await readMarker(this.ctx.paths, instance)
      if (marker !== undefined) await writeMarker(this.ctx.paths, { ...marker, updatedAt: this.ctx.now() })
      await r?.stop(o.graceful)
    })
  }

  /** A snapshot round now, for tests and benchmarks; no-op unless the instance runs here with mode replicate. */
  async handOver (instance: string, spec: StateSpec, node: string): Promise<CopyResult> {
    const e = this.entry(instance, spec)
    await this.ctx.lock.run(instance, async () => { await snapshotRound(this.ctx, instance, spec, undefined, false, e, [node]) })
    const copy = e.snapshot?.copies.find((c) => c.node === node)
    return copy ?? { node, ok: false, detail: e.lastError ?? 'no snapshot was taken' }
  }

  async snapshotNow (instance: string): Promise<void> {
    await this.entries.get(instance)?.replicator?.now()
  }

  generation (instance: string): number | undefined { return this.entries.get(instance)?.generation }

  private entry (instance: string, spec: StateSpec | undefined): Entry {
    let e = this.entries.get(instance)
    if (e === undefined) {
      e = { spec, dir: this.ctx.paths.live(instance), running: false }
      this.entries.set(instance, e)
    }
    return e
  }

  async status (instance: string): Promise<StateStatus | undefined> {
    const e = this.entries.get(instance)
    const held = await this.ctx.copies.current(instance)
    if (e === undefined && held === undefined) return undefined
    const snapshot = e?.snapshot === undefined ? undefined : { ...e.snapshot, ageMs: Math.max(0, this.ctx.now() - e.snapshot.takenAt) }
    return {
      instance,
      node: this.ctx.self,
      mode: e === undefined ? undefined : e.spec?.mode ?? 'local',
      running: e?.running ?? false,
      dir: e?.dir,
      generation: e?.generation,
      note: e?.note,
      snapshot,
      lastError: e?.lastError,
      held: held === undefined ? undefined : { generation: held.meta.generation, ageMs: this.ctx.copies.ageMs(held.meta), source: held.meta.source, bytes: held.meta.bytes }
    }
  }

  async statuses (): Promise<StateStatus[]> {
    const ids = new Set([...this.entries.keys(), ...await this.ctx.copies.instances()])
    const out = await Promise.all([...ids].sort().map(async (id) => await this.status(id)))
    return out.filter((s): s is StateStatus => s !== undefined)
  }

  // ---- mesh methods ----

  private register (): void {
    if (this.registered) return
    this.registered = true
    const t = this.c.transport
    serve(t, mesh, 'state.holdings', async (p) => await this.holdings(p.instance))
    serve(t, mesh, 'state.fetch', (p, ctx) => this.serve(p, ctx))
    serve(t, mesh, 'state.offer', async (p) => await this.offer(p))
    serve(t, mesh, 'state.status', async (p) => p.instance === undefined ? await this.statuses() : [await this.status(p.instance)].filter((s): s is StateStatus => s !== undefined))
  }

  private ready (): void {
    if (!this.running) throw new OriginError('E_NOT_READY', `the state layer of ${this.ctx.self} is not running`)
  }

  private async holdings (instance: string): Promise<Holdings> {
    this.ready()
    const out: Holdings = { node: this.ctx.self }
    const e = this.entries.get(instance)
    const marker = await readMarker(this.ctx.paths, instance)
    if (marker !== undefined && await exists(this.ctx.paths.live(instance))) {
      const running = e?.running ?? false
      out.live = { generation: marker.generation, ageMs: running ? 0 : Math.max(0, this.ctx.now() - marker.updatedAt), running, hook: e?.spec?.before !== undefined }
    }
    const held = await this.ctx.copies.current(instance)
    if (held !== undefined) out.copy = { generation: held.meta.generation, ageMs: this.ctx.copies.ageMs(held.meta), takenAt: held.meta.takenAt, source: held.meta.source }
    return out
  }

  /** state.fetch: a snapshot held here, or the instance's directory (after its hook if it still runs here). */
  private async * serve (p: FetchRequest, call: CallContext): AsyncGenerator<ArchiveItem> {
    this.ready()
    if (p.source === 'copy') {
      const held = await this.ctx.copies.acquire(p.instance)
      if (held === undefined) throw new OriginError('E_NOT_FOUND', `${this.ctx.self} holds no snapshot of ${p.instance}`, { instance: p.instance })
      try {
        yield * pack(held.dir, { generation: held.meta.generation, takenAt: held.meta.takenAt, ageMs: this.ctx.copies.ageMs(held.meta) })
      } finally {
        held.release()
      }
      return
    }
    const release = await this.ctx.lock.acquire(p.instance)
    try {
      const marker = await readMarker(this.ctx.paths, p.instance)
      if (marker === undefined || !await exists(this.ctx.paths.live(p.instance))) throw new OriginError('E_NOT_FOUND', `${this.ctx.self} holds no directory of ${p.instance}`, { instance: p.instance })
      const e = this.entries.get(p.instance)
      let meta = { generation: marker.generation, takenAt: marker.updatedAt, ageMs: Math.max(0, this.ctx.now() - marker.updatedAt) }
      if (e?.running === true) {
        const before = e.spec?.before
        if (p.whileRunning !== true || before === undefined || e.hook === undefined) {
          throw new OriginError('E_NOT_READY', `${p.instance} still runs on ${this.ctx.self}${before === undefined ? ' and has no before hook' : ''}`, { instance: p.instance })
        }
        await runHook(before, e.hook, this.ctx.o.hookTimeoutMs)
        meta = { generation: marker.generation, takenAt: this.ctx.now(), ageMs: 0 }
      }
      if (call.signal.aborted) return
      this.c.log.info(`${p.instance}: sending its directory (generation ${marker.generation}) to a node that starts it`)
      yield * pack(this.ctx.paths.live(p.instance), meta)
    } finally {
      release()
    }
  }

  /** state.offer: pull a snapshot from the node that took it, if it is newer than the one held here. */
  private async offer (p: OfferRequest): Promise<{ stored: boolean, reason: string }> {
    this.ready()
    if (p.from === this.ctx.self) throw new OriginError('E_PAYLOAD_INVALID', 'a node cannot offer a snapshot to itself')
    try {
      return await this.ctx.copies.store(p.instance, { generation: p.generation, takenAt: p.takenAt, source: p.from }, async (into) =>
        await fetch(this.ctx, p.from, { instance: p.instance, source: 'copy' }, into))
    } catch (err) {
      this.c.log.warn(`${p.instance}: could not take the snapshot ${p.from} offered: ${errorMessage(err)}`)
      throw err
    }
  }
}
