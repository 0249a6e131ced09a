/**
 * One snapshot round of a replicated instance: run the `before` hook (a failure skips the
 * round and says so), copy the directory into this node's snapshot store (whole or not at
 * all), then ask the `copies` members chosen by rendezvous hashing to pull it by stream.
 * Never throws: what happened goes into the instance's status and the log.
 */
import { errorMessage } from '../errors'
import type { StateSpec } from '../desired/types'
import { copyDir, type ArchiveSummary } from './archive'
import { connectionTo, type Ctx } from './context'
import { copyHolders } from './holders'
import { runHook, type HookEnv } from './hook'
import { readMarker } from './meta'
import { replicateDefaults, type CopyResult, type StateStatus } from './types'
import type { OfferRequest } from './wire'
import { call } from '../protocol/table'
import { mesh } from '../protocol/mesh'

/** What a round reports into: the instance's status. */
export type SnapshotStatus = Pick<StateStatus, 'snapshot' | 'lastError'>

/** `targets`: the members to copy to instead of the rendezvous choice (a hand-over to the node that takes the instance next). */
export async function snapshotRound (ctx: Ctx, instance: string, spec: StateSpec, hook: HookEnv | undefined, useHook: boolean, status: SnapshotStatus, targets?: string[]): Promise<void> {
  const fail = (why: string): void => {
    if (status.lastError !== why) ctx.c.log.warn(`${instance}: ${why}`)
    status.lastError = why
  }
  try {
    const marker = await readMarker(ctx.paths, instance)
    if (marker === undefined) { fail('snapshot skipped: the directory has no generation record (was it prepared?)'); return }
    if (useHook && spec.before !== undefined) {
      if (hook === undefined) { fail('snapshot skipped: the before hook has no environment (attach gave none)'); return }
      try { await runHook(spec.before, hook, ctx.o.hookTimeoutMs) } catch (err) { fail(`snapshot skipped: ${errorMessage(err)}`); return }
    }
    const takenAt = ctx.now()
    let summary: ArchiveSummary | undefined
    await ctx.copies.store(instance, { generation: marker.generation, takenAt, source: ctx.self }, async (into) => {
      summary = await copyDir(ctx.paths.live(instance), into, { generation: marker.generation, takenAt, ageMs: 0 })
      return summary
    })
    const want = targets?.length ?? spec.copies ?? replicateDefaults.copies
    const alive = Object.values(ctx.c.membership.table()).filter((m) => m.id !== ctx.self && m.status === 'alive').map((m) => m.id)
    const holders = targets ?? copyHolders(instance, alive, want)
    const offer: OfferRequest = { instance, from: ctx.self, generation: marker.generation, takenAt }
    const copies = await Promise.all(holders.map(async (node): Promise<CopyResult> => {
      try {
        const conn = await connectionTo(ctx, node)
        const r = await call(conn, mesh, 'state.offer', offer, { timeoutMs: ctx.o.transferTimeoutMs })
        return { node, ok: true, stored: r.stored, detail: r.reason }
      } catch (err) {
        return { node, ok: false, detail: errorMessage(err) }
      }
    }))
    status.snapshot = { generation: marker.generation, takenAt, ageMs: 0, bytes: summary?.bytes ?? 0, files: summary?.files ?? 0, copies }
    const bad = copies.filter((c) => !c.ok)
    if (bad.length > 0) fail(`snapshot of generation ${marker.generation} not copied to ${bad.map((c) => `${c.node} (${c.detail ?? '?'})`).join(', ')}`)
    else if (holders.length < want) fail(`snapshot of generation ${marker.generation} is on ${holders.length} other node${holders.length === 1 ? '' : 's'} of the ${want} wanted: no more alive members`)
    else {
      if (status.lastError !== undefined) ctx.c.log.info(`${instance}: snapshots copied again (${holders.join(', ')})`)
      status.lastError = undefined
      ctx.c.log.debug(`${instance}: snapshot of generation ${marker.generation} (${summary?.bytes ?? 0} bytes) copied to ${holders.join(', ')}`)
    }
  } catch (err) {
    fail(`snapshot failed: ${errorMessage(err)}`)
  }
}
