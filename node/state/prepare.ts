/**
 * `prepare`: what an instance's directory should be before it starts on this node. Asks
 * the reachable members what they hold, decides (decide.ts, pure), waits while the newest
 * directory is still in use elsewhere, and acts: keep, move a stale directory aside, copy
 * from a snapshot or another node (into a temp dir, renamed into place only when whole).
 * A failed copy changes nothing: the next source is tried, and when none is left the
 * error says so and the caller tries again later.
 */
import { mkdir, rename } from 'node:fs/promises'
import { relative } from 'node:path'
import { sleep } from '../clock'
import { OriginError, errorMessage } from '../errors'
import type { StateMode, StateSpec } from '../desired/types'
import { copyDir, unpack, type ArchiveSummary } from './archive'
import { connectionTo, othersInTouch, within, type Ctx } from './context'
import { decide, type Decision, type Source } from './decide'
import { exists } from './files'
import { readMarker, writeMarker } from './meta'
import type { PreparedState } from './types'
import { sourcesOf, withDeadline, type FetchRequest } from './wire'
import { call, stream } from '../protocol/table'
import { mesh } from '../protocol/mesh'

interface LocalView { exists: boolean, generation?: number, ageMs: number }

/** `once`: the instance must never run on two nodes (a singleton). */
export async function prepareState (ctx: Ctx, instance: string, spec: StateSpec | undefined, once = false): Promise<PreparedState> {
  const mode: StateMode = spec?.mode ?? 'local'
  const startedAt = ctx.now()
  const failed: string[] = []
  /** The newest generation a copy failed from: falling back to older data (or to nothing) instead would lose it quietly. */
  let failedGeneration = 0
  const isFailed = (s: Source): boolean => failed.some((f) => f.startsWith(`${s.kind} on ${s.node}:`))
  for (;;) {
    const local = await localView(ctx, instance)
    const seen = ctx.seen.get(instance)
    const sources = (await gather(ctx, instance, once ? lastRunner(ctx, seen?.node) : undefined)).filter((s) => !isFailed(s))
    const d = decide({ self: ctx.self, mode, local, seen: seen ?? { generation: 0 }, sources })
    if (failed.length > 0 && (d.kind === 'empty' || (d.kind === 'restore' && d.from.generation < failedGeneration))) {
      throw new OriginError('E_UNREACHABLE', `${instance}: could not copy its state (${failed.join('; ')}); nothing changed, try again later`, { instance })
    }
    // A singleton runs once. Its directory in use on another node means it still runs there
    // (this node's view has not caught up after a partition healed, or its old copy has not
    // stopped yet): starting here beside it, empty or on an older directory, runs it twice.
    // A replica may overlap its old copy for a moment, as a move did before.
    // Nor is one copied while it runs (a before hook lets a replica move that way).
    const inUse = once ? sources.find((s) => s.kind === 'live' && s.running && s.node !== ctx.self) : undefined
    if (inUse !== undefined) {
      if (ctx.now() - startedAt < ctx.o.sourceWaitMs) { await sleep(ctx.clock, ctx.o.pollMs); continue }
      throw new OriginError('E_NOT_READY', `${instance}: still runs on ${inUse.node} (its directory of generation ${inUse.generation} is in use there); waiting for it to stop there rather than running it twice`, { instance, node: inUse.node })
    }
    let whileRunning = false
    if (d.kind === 'restore' && d.from.running && d.from.node !== ctx.self) {
      if (ctx.now() - startedAt < ctx.o.sourceWaitMs) { await sleep(ctx.clock, ctx.o.pollMs); continue }
      if (!d.from.hook) {
        throw new OriginError('E_NOT_READY', `${instance}: its directory (generation ${d.from.generation}) is still in use on ${d.from.node} and the service has no before hook to copy it safely; waiting for it to stop there`, { instance, node: d.from.node })
      }
      whileRunning = true
    }
    try {
      return await act(ctx, instance, d, local, whileRunning)
    } catch (err) {
      if (!(err instanceof TransferFailed)) throw err
      ctx.c.log.warn(`${instance}: copying its state failed: ${err.message}; trying the next source`)
      failed.push(err.message)
      if (d.kind === 'restore') failedGeneration = Math.max(failedGeneration, d.from.generation)
    }
  }
}

class TransferFailed extends Error {}

async function localView (ctx: Ctx, instance: string): Promise<LocalView> {
  const marker = await readMarker(ctx.paths, instance)
  return {
    exists: await exists(ctx.paths.live(instance)),
    generation: marker?.generation,
    ageMs: marker === undefined ? 0 : Math.max(0, ctx.now() - marker.updatedAt)
  }
}

/**
 * The member that ran a singleton last when this node's table says it is dead: a view that
 * has not caught up after a partition healed may say so of a member that still runs it
 * (it has not yet heard it is thought dead, so it has not refuted). It is asked too; a
 * member really gone costs the start at most askTimeoutMs.
 */
function lastRunner (ctx: Ctx, node: string | undefined): { id: string, address: string } | undefined {
  const m = node === undefined || node === ctx.self ? undefined : ctx.c.membership.table()[node]
  return m?.status === 'dead' ? { id: m.id, address: m.address } : undefined
}

/** What the reachable members (and `also`) and this node's snapshot store hold of `instance`; every generation heard of is remembered. */
async function gather (ctx: Ctx, instance: string, also?: { id: string, address: string }): Promise<Source[]> {
  const ask = also === undefined ? othersInTouch(ctx) : [...othersInTouch(ctx), also]
  const answers = await Promise.all(ask.map(async (m) => {
    try {
      const answer = await within(ctx.clock, (async () => await call(await ctx.c.transport.peer(m.address), mesh, 'state.holdings', { instance }, { timeoutMs: ctx.o.askTimeoutMs }))(), ctx.o.askTimeoutMs, `state.holdings on ${m.id}`)
      return sourcesOf(m.id, answer)
    } catch (err) {
      ctx.c.log.debug(`${instance}: ${m.id} did not say what it holds: ${errorMessage(err)}`)
      return []
    }
  }))
  const sources = answers.flat()
  const own = await ctx.copies.current(instance)
  if (own !== undefined) {
    sources.push({ node: ctx.self, kind: 'copy', generation: own.meta.generation, ageMs: ctx.copies.ageMs(own.meta), running: false, hook: false, takenBy: own.meta.source })
    if (own.meta.source !== ctx.self) ctx.seen.observe(instance, own.meta.generation, own.meta.source)
  }
  for (const s of sources) if (s.node !== ctx.self) ctx.seen.observe(instance, s.generation, s.node)
  return sources
}

async function act (ctx: Ctx, instance: string, d: Decision, local: LocalView, whileRunning: boolean): Promise<PreparedState> {
  const dir = ctx.paths.live(instance)
  const mark = async (): Promise<void> => { await writeMarker(ctx.paths, { instance, generation: d.generation, updatedAt: ctx.now() }) }
  if (d.kind === 'keep') {
    await mark()
    return { dir, generation: d.generation, note: d.reason, outcome: 'kept' }
  }
  if (d.kind === 'empty') {
    const movedAside = d.stale === undefined ? undefined : await moveAside(ctx, instance, d.stale)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await mark()
    return { dir, generation: d.generation, note: withAside(ctx, d.reason, d.stale, movedAside), outcome: 'empty', movedAside }
  }
  const from = { node: d.from.node, kind: d.from.kind, generation: d.from.generation, ageMs: d.from.ageMs }
  if (d.from.node === ctx.self && d.from.kind === 'live') {
    await mark() // this node's own directory, the freshest reachable: used in place, under a new generation
    return { dir, generation: d.generation, note: d.reason, outcome: 'restored', from }
  }
  const tmp = ctx.paths.temp(ctx.paths.stateRoot)
  // Real time: the transfer's figures are for benchmarks, not a decision.
  const t0 = performance.now()
  let summary: ArchiveSummary
  try {
    summary = d.from.node === ctx.self ? await copyOwnSnapshot(ctx, instance, tmp) : await fetch(ctx, d.from.node, { instance, source: d.from.kind, whileRunning }, tmp)
  } catch (err) {
    throw new TransferFailed(`${d.from.kind} on ${d.from.node}: ${errorMessage(err)}`)
  }
  const ms = performance.now() - t0
  const movedAside = d.stale === undefined || !local.exists ? undefined : await moveAside(ctx, instance, d.stale)
  await rename(tmp, dir)
  await mark()
  return {
    dir, generation: d.generation, note: withAside(ctx, d.reason, d.stale, movedAside), outcome: 'restored', from, movedAside,
    transfer: { bytes: summary.bytes, files: summary.files, ms }
  }
}

async function copyOwnSnapshot (ctx: Ctx, instance: string, into: string): Promise<ArchiveSummary> {
  const held = await ctx.copies.acquire(instance)
  if (held === undefined) throw new OriginError('E_NOT_FOUND', 'the snapshot is gone')
  try {
    return await copyDir(held.dir, into, { generation: held.meta.generation, takenAt: held.meta.takenAt, ageMs: ctx.copies.ageMs(held.meta) })
  } finally {
    held.release()
  }
}

/** Stream a directory (or snapshot) from `node` into `into`. */
export async function fetch (ctx: Ctx, node: string, req: FetchRequest, into: string): Promise<ArchiveSummary> {
  const conn = await connectionTo(ctx, node)
  const what = `copying the ${req.source === 'live' ? 'directory' : 'snapshot'} of ${req.instance} from ${node}`
  return await unpack(withDeadline(ctx.clock, stream(conn, mesh, 'state.fetch', req), ctx.o.transferTimeoutMs, what), into)
}

/** Move a stale directory beside it, under a name that says its generation and when; never deleted. */
async function moveAside (ctx: Ctx, instance: string, generation: number): Promise<string> {
  const base = ctx.paths.stale(instance, generation, ctx.now())
  let dest = base
  for (let n = 2; await exists(dest); n++) dest = `${base}-${n}`
  await rename(ctx.paths.live(instance), dest)
  ctx.c.log.warn(`${instance}: moved the stale directory of generation ${generation} aside to ${dest}`)
  return dest
}

function withAside (ctx: Ctx, reason: string, stale: number | undefined, movedAside: string | undefined): string {
  if (movedAside === undefined || stale === undefined) return reason
  return `moved the stale directory of generation ${stale} aside to ${relative(ctx.paths.dataDir, movedAside)}; ${reason}`
}
