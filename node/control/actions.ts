/**
 * Operators' actions on nodes: evaluate code there (eval.ts), restart a service or an
 * instance (rolling: one at a time, each waiting until the previous is ready again), and
 * drain a node (it hosts nothing until undrained, across its restarts). Each is a journal
 * line with the operator.
 *
 *   cluster.eval    { node, code } -> EvalResult           on one node (relayed to it)
 *   cluster.each    { code }       -> EachResult[]         on every member at once
 *   cluster.restart { target }     -> RestartResult        `web` (every instance) or `web-1`
 *   cluster.drain   { node, drained } -> { node, drained } `drained: false` undrains
 */
import { existsSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { isoTime, sleep, type Clock } from '../clock'
import { OriginError, asOriginError, type OriginErrorJSON } from '../errors'
import type { Journal } from '../journal/types'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { SpecLayer } from '../desired/contract'
import type { Supervisor } from '../supervisor/types'
import type { Transport } from '../transport/types'
import { evaluateApart, type EvalResult } from './eval'
import { call, serve } from '../protocol/table'
import { mesh } from '../protocol/mesh'
import { operator } from '../protocol/operator'

export interface ActionsComponents { transport: Transport, membership: Membership, spec: SpecLayer, supervisor: Supervisor, dataDir: string, log: Logger, journal?: Journal, clock: Clock }

/** One node's answer to `cluster.each`: its value, or its error. */
export type EachResult = { node: string, value: unknown, ms: number } | { node: string, error: OriginErrorJSON }

export interface RestartResult { target: string, restarted: Array<{ instance: string, node: string, ms: number }> }

/** How long one instance may take to be ready again after its restart. @default 120 s */
const readyTimeoutMs = 120_000
/** How long a restart follows an instance that moves between nodes before it gives up. */
const followMovesMs = 15_000
/** How long a relayed evaluation may take, network included (besides the time limit itself). */
const evalCallMs = 10_000

/** The actions' handlers, put in by `register` (control's start); `start` says a drain from before this start again. */
export function registerActions (c: ActionsComponents): { register: () => void, start: () => void } {
  const drainFile = join(c.dataDir, 'drained')

  const mayEval = (operator: string): void => {
    const allowed = c.spec.current()?.spec.cluster.operators?.eval ?? []
    if (!allowed.includes(operator)) {
      c.journal?.record({ kind: 'operator', operator, action: 'eval refused', detail: 'not in cluster.operators.eval' })
      throw new OriginError('E_FORBIDDEN_ROLE', `operator ${operator} may not evaluate code: the applied spec's cluster.operators.eval does not name them`, { operator })
    }
  }
  const evalHere = async (operator: string, src: string, timeoutMs?: number): Promise<EvalResult> => {
    mayEval(operator)
    c.journal?.record({ kind: 'operator', operator, action: 'eval', detail: src.length > 2000 ? `${src.slice(0, 2000)}…` : src })
    c.log.info(`operator ${operator} evaluates ${JSON.stringify(src.length > 200 ? src.slice(0, 200) + '…' : src)}`)
    return await evaluateApart(src, await nodeView(c), { timeoutMs })
  }
  const evalOn = async (node: string, operator: string, src: string, timeoutMs?: number): Promise<EvalResult> => {
    if (node === c.membership.id) return await evalHere(operator, src, timeoutMs)
    const conn = await c.transport.peer(addressOf(c, node))
    return await call(conn, mesh, 'eval.run', { operator, code: src, ...(timeoutMs === undefined ? {} : { timeoutMs }) }, { timeoutMs: evalCallMs + (timeoutMs ?? 0) })
  }

  const setDrained = async (on: boolean, operator?: string): Promise<void> => {
    if (on) await writeFile(drainFile, JSON.stringify({ by: operator, at: isoTime(c.clock.now()) }) + os.EOL)
    else await rm(drainFile, { force: true })
    c.membership.setDrained(on)
    if (operator !== undefined) c.journal?.record({ kind: 'operator', operator, action: on ? 'drain' : 'undrain', detail: c.membership.id })
    c.log.info(on ? `drained${operator === undefined ? ' (since before this start)' : ` by ${operator}`}: this node hosts nothing until undrained` : `undrained by ${operator ?? '?'}: this node hosts instances again`)
  }
  const t = c.transport
  const restartWhereItRuns = async (instance: string, by: string): Promise<RestartResult['restarted'][number]> => await followMoves({
    instance,
    clock: c.clock,
    followMs: followMovesMs,
    placedOn: (id) => (c.supervisor.current()?.assignments ?? []).find((x) => x.instance === id)?.node,
    on: async (node) => await call(await t.peer(addressOf(c, node)), mesh, 'instance.restart', { instance, operator: by }, { timeoutMs: readyTimeoutMs + 60_000 }), // its node may first wait up to 30 s for a start or stop under way
    moved: (node) => { c.log.info(`${instance} does not run on ${node} (it moved): restarting it where it runs now`) }
  })
  const register = (): void => {
    serve(t, mesh, 'eval.run', async (p) => await evalHere(p.operator, p.code, p.timeoutMs))
    serve(t, operator, 'cluster.eval', async (p, ctx) => { mayEval(ctx.peer.name); return await evalOn(p.node, ctx.peer.name, p.code, p.timeoutMs) })
    serve(t, operator, 'cluster.each', async (p, ctx) => {
      mayEval(ctx.peer.name)
      const members = Object.values(c.membership.table()).filter((m) => m.status !== 'left').map((m) => m.id).sort()
      return await Promise.all(members.map(async (node): Promise<EachResult> => {
        try {
          const r = await evalOn(node, ctx.peer.name, p.code, p.timeoutMs)
          return { node, value: r.value, ms: r.ms }
        } catch (err) {
          return { node, error: asOriginError(err).toJSON() }
        }
      }))
    })
    serve(t, mesh, 'instance.restart', async (p) => {
      const t0 = c.clock.now()
      if (c.supervisor.restart === undefined) throw new OriginError('E_UNKNOWN_METHOD', 'this node\'s supervisor cannot restart an instance in place')
      // Not here (it moved, or has not started yet): said before anything is journaled, so the
      // operator's node can follow it to where it runs.
      if (!c.supervisor.report().some((i) => i.instance === p.instance)) throw new OriginError('E_NOT_FOUND', `${p.instance} does not run on ${c.membership.id}`, { instance: p.instance, node: c.membership.id })
      c.journal?.record({ kind: 'operator', operator: p.operator, action: 'restart', detail: p.instance })
      await c.supervisor.restart(p.instance)
      await readyAgain(c, p.instance)
      return { instance: p.instance, node: c.membership.id, ms: c.clock.now() - t0 }
    })
    serve(t, operator, 'cluster.restart', async (p, ctx) => {
      const assigned = c.supervisor.current()?.assignments ?? []
      const targets = assigned.filter((a) => a.instance === p.target || (a.service === p.target && a.instance !== undefined))
      if (targets.length === 0) throw new OriginError('E_NOT_FOUND', `no service or instance "${p.target}" is placed now`, { target: p.target })
      c.log.info(`operator ${ctx.peer.name} restarts ${p.target}: ${targets.map((a) => a.instance).join(', ')}, one at a time`)
      const restarted: RestartResult['restarted'] = []
      for (const a of targets) restarted.push(await restartWhereItRuns(a.instance ?? '', ctx.peer.name))
      return { target: p.target, restarted }
    })
    serve(t, mesh, 'node.drain', async (p) => { await setDrained(p.drained, p.operator); return { node: c.membership.id, drained: p.drained } })
    serve(t, operator, 'cluster.drain', async (p, ctx) => {
      if (p.node === c.membership.id) { await setDrained(p.drained, ctx.peer.name); return { node: p.node, drained: p.drained } }
      const conn = await t.peer(addressOf(c, p.node))
      return await call(conn, mesh, 'node.drain', { drained: p.drained, operator: ctx.peer.name })
    })
  }

  // Drained before this start: said again as soon as this node is in its own table, which
  // is before the supervisor starts (membership starts first and its join changes the
  // table), so the node starts nothing in between.
  let restore = existsSync(drainFile)
  const restoreDrain = (): void => {
    if (!restore || c.membership.table()?.[c.membership.id] === undefined) return
    restore = false
    c.membership.events.off('change', restoreDrain)
    c.membership.setDrained(true)
    c.log.info('drained (since before this start): this node hosts nothing until undrained')
  }
  // The one listener set before start: control starts after the supervisor, and a node
  // drained before this start must say so before the supervisor places anything here.
  c.membership.events.on('change', restoreDrain)
  return { register, start: restoreDrain }
}

/**
 * `on(node)` for the node `instance` is placed on. Placement can change under an action (a
 * node joined or left a moment ago): when that node answers E_NOT_FOUND (the instance is
 * not there), the instance is looked up again and followed, every 200 ms for up to
 * `followMs`; any other error ends it at once.
 */
export async function followMoves<R> (o: { instance: string, clock: Clock, followMs: number, placedOn: (instance: string) => string | undefined, on: (node: string) => Promise<R>, moved?: (node: string) => void }): Promise<R> {
  const until = o.clock.now() + o.followMs
  for (;;) {
    const node = o.placedOn(o.instance)
    if (node === undefined) throw new OriginError('E_NOT_FOUND', `${o.instance} is not placed any more`, { instance: o.instance })
    try {
      return await o.on(node)
    } catch (err) {
      if (asOriginError(err).code !== 'E_NOT_FOUND' || o.clock.now() >= until) throw err
      o.moved?.(node)
      await sleep(o.clock, 200)
    }
  }
}

function addressOf (c: ActionsComponents, node: string): string {
  const m = c.membership.table()[node]
  if (m === undefined) throw new OriginError('E_NOT_FOUND', `no node "${node}" in the member table`, { node })
  if (m.status !== 'alive' && m.status !== 'suspect') throw new OriginError('E_UNREACHABLE', `node ${node} is ${m.status}`, { node })
  return m.address
}

async function readyAgain (c: ActionsComponents, instance: string): Promise<void> {
  const until = c.clock.now() + readyTimeoutMs
  for (;;) {
    const r = c.supervisor.report().find((i) => i.instance === instance)
    if (r?.status.state === 'ready') return
    if (r?.status.state === 'failed') throw new OriginError('E_NOT_READY', `${instance} failed after its restart: ${r.status.reason ?? ''}`, { instance })
    if (c.clock.now() > until) throw new OriginError('E_NOT_READY', `${instance} is not ready ${readyTimeoutMs / 1000} s after its restart (${r?.status.state ?? 'gone'})`, { instance })
    await sleep(c.clock, 100)
  }
}

/** What the code sees as `node`: plain data, copied (the evaluation cannot reach the node's objects). */
async function nodeView (c: ActionsComponents): Promise<unknown> {
  const applied = c.spec.current()
  const mem = process.memoryUsage()
  const cpu = process.cpuUsage()
  return {
    id: c.membership.id,
    members: c.membership.table(),
    spec: applied === undefined ? null : { version: applied.version, cluster: applied.spec.cluster, services: applied.spec.services },
    instances: c.supervisor.report(),
    process: { pid: process.pid, uptimeS: process.uptime(), rssMb: mem.rss / 2 ** 20, heapUsedMb: mem.heapUsed / 2 ** 20, cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, loadavg: os.loadavg(), nodeVersion: process.version },
    journal: (await c.journal?.read({ limit: 50 })) ?? []
  }
}
