/** What the state layer's modules share: config, components, where things are, the stores. */
import type { Clock, Timer } from '../clock'
import { OriginError } from '../errors'
import type { Connection } from '../transport/types'
import type { CopyStore } from './copies'
import type { KeyedLock } from './lock'
import type { SeenStore } from './meta'
import type { StatePaths } from './paths'
import type { StateComponents, StateInit } from './types'

export interface Ctx {
  o: Required<StateInit>
  c: StateComponents
  self: string
  clock: Clock
  now: () => number
  paths: StatePaths
  copies: CopyStore
  seen: SeenStore
  /** Per instance: prepare, detach and serving its directory take turns. */
  lock: KeyedLock
}

/** Members other than this node that may answer: alive or suspect (a suspect may only be slow). */
export function othersInTouch (ctx: Ctx): Array<{ id: string, address: string }> {
  return Object.values(ctx.c.membership.table())
    .filter((m) => m.id !== ctx.self && (m.status === 'alive' || m.status === 'suspect'))
    .map((m) => ({ id: m.id, address: m.address }))
}

/** A pooled connection to member `node`, by its address in the member table. */
export async function connectionTo (ctx: Ctx, node: string): Promise<Connection> {
  const m = ctx.c.membership.table()[node]
  if (m === undefined) throw new OriginError('E_NOT_FOUND', `no member "${node}" in the member table`, { node })
  return await ctx.c.transport.peer(m.address)
}

/** `p`, or E_TIMEOUT after `ms` on `clock`. */
export async function within<T> (clock: Clock, p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = clock.after(ms, () => reject(new OriginError('E_TIMEOUT', `${what}: no answer within ${ms} ms`, { timeoutMs: ms })))
  })
  try { return await Promise.race([p, late]) } finally { timer?.cancel() }
}
