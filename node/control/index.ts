/**
 * control: the operator RPC. Methods here need an `operator` certificate; what they
 * return is plain data the REPL renders (and `origin repl -e` prints as JSON). Their
 * payloads and results are typed in node/protocol/operator.ts (and the node-to-node ones
 * control serves in mesh.ts); they are registered when the layer starts.
 *
 *   cluster.nodes  -> NodeRow[]   the member table as this node sees it
 *   cluster.hubs   -> HubsView    the hub set and the policy that chose it
 *   cluster.ping   -> { node, at } which node answered, and its clock
 *   cluster.spec   -> SpecView     the spec applied, per node which version it runs, the last rejection
 *   cluster.sync   -> SyncResult[] fetch the spec repo now (hubs do; others ask them)
 *   cluster.services / cluster.where -> ServicesView   what runs where, and why not
 *   cluster.logs   -> stream of LogItem                a service's logs on one node, running or not; 'node': the node log
 *   cluster.stats  -> StatsView    every node's CPU, memory, load, disk, event-loop delay, mesh connections and instances (stats.ts)
 *   cluster.events -> EventsView   every node's journal merged in time order (events.ts)
 *   cluster.replay -> ReplayView   the cluster at a past moment, replayed from the journals
 *   cluster.eval / cluster.each / cluster.restart / cluster.drain -> operators' actions on nodes (actions.ts)
 */
import { servicesView } from './services'
import { localLogs, type LogItem, type LogsRequest } from './logs'
import { isoTime, systemClock } from '../clock'
import { OriginError } from '../errors'
import { certificateExpiry } from '../keys/expiry'
import { clusterStats } from './cluster-stats'
import { meshCount } from './mesh'
import { StatsSampler } from './stats'
import { clusterEvents, clusterReplay, type EventsRequest } from './events'
import { registerActions } from './actions'
import { endIdleThreads } from './eval'
import { call, serve, stream } from '../protocol/table'
import { mesh } from '../protocol/mesh'
import { operator } from '../protocol/operator'
import type { Control, ControlComponents, ControlInit, NodeRow, SpecView } from './types'
import type { Connection } from '../transport/types'
import { specRejectedError } from '../protocol/errors'
import type { Rejection } from '../desired/contract'

export type { Control, ControlComponents, ControlInit, HubsView, NodeRow, SpecView } from './types'

export function control (_init: ControlInit = {}) {
  return (given: ControlComponents): Control => {
    const c = { ...given, clock: given.clock ?? systemClock }
    const sampler = new StatsSampler({ dataDir: c.dataDir, membership: c.membership, supervisor: c.supervisor, mesh: meshCount(c), transport: c.transport, proxy: c.proxy, clock: c.clock, health: c.health })
    const nodes = (): NodeRow[] => {
      const hubSet = new Set(c.hubs.current())
      return Object.values(c.membership.table())
        .map((m) => ({
          id: m.id,
          address: m.address,
          status: m.status,
          hub: hubSet.has(m.id),
          cpus: m.characteristics.cpus,
          memoryMb: m.characteristics.memoryMb,
          arch: m.characteristics.arch,
          labels: m.characteristics.labels,
          startedAt: m.characteristics.startedAt,
          incarnation: m.incarnation,
          containment: m.characteristics.containment,
          secrets: m.characteristics.secrets,
          ...(m.characteristics.drained === true ? { drained: true as const } : {}),
          ...(m.characteristics.unhealthy === undefined ? {} : { unhealthy: m.characteristics.unhealthy }),
          // The host's clock, not the node's: TLS checks a certificate against it.
          certificate: m.characteristics.certificate === undefined
            ? undefined
            : certificateExpiry({ serial: m.characteristics.certificate.serial, notAfter: new Date(m.characteristics.certificate.notAfter) }, Date.now())
        }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    }
    const actions = registerActions(c)
    const t = c.transport
    let registered = false
    // Handlers go in at start: a control that was built but not started answers nothing.
    const register = (): void => {
      if (registered) return
      registered = true
      serve(t, operator, 'cluster.nodes', nodes)
      serve(t, operator, 'cluster.hubs', () => ({ hubs: c.hubs.current(), policy: c.hubs.policy(), answeredBy: c.membership.id }))
      serve(t, operator, 'cluster.spec', async () => await specView(c))
      serve(t, operator, 'cluster.sync', async (_p, ctx) => {
        c.journal?.record({ kind: 'operator', operator: ctx.peer.name, action: 'sync' })
        return await c.spec.sync()
      })
      serve(t, operator, 'cluster.services', async () => await servicesView(c))
      serve(t, operator, 'cluster.where', async (p) => {
        const v = await servicesView(c, p.service)
        if (v.services.length === 0) throw new OriginError('E_NOT_FOUND', `no service "${p.service}" in the applied spec`, { service: p.service })
        return v
      })
      serve(t, mesh, 'supervisor.report', () => c.supervisor.report())
      serve(t, mesh, 'supervisor.logs', (p, ctx) => localLogs(c, p, ctx.signal))
      serve(t, operator, 'cluster.logs', (p, ctx) => relayLogs(c, p, ctx.signal))
      serve(t, operator, 'cluster.ops', () => ({ version: c.spec.current()?.version ?? '', files: c.spec.current()?.spec.ops ?? {} }))
      serve(t, operator, 'cluster.forget', (p, ctx) => {
        c.log.info(`operator ${ctx.peer.name} forgets ${p.node}`)
        c.journal?.record({ kind: 'operator', operator: ctx.peer.name, action: 'forget', detail: p.node })
        c.membership.forget(p.node)
        return { forgotten: p.node }
      })
      serve(t, mesh, 'stats.node', async () => await sampler.collect())
      serve(t, operator, 'cluster.stats', async () => await clusterStats({ ...c, sampler }))
      const j = c.journal
      if (j !== undefined) {
        const ec = { ...c, journal: j }
        serve(t, mesh, 'journal.read', async (p) => await j.read(p))
        serve(t, operator, 'cluster.events', async (p: EventsRequest) => await clusterEvents(ec, p))
        serve(t, operator, 'cluster.replay', async (p) => await clusterReplay(ec, p.at))
      }
      serve(t, operator, 'cluster.ping', () => ({ node: c.membership.id, at: c.clock.now() }))
      actions.register()
    }
    const onConnection = (conn: Connection): void => {
      if (conn.peer.role !== 'operator') return
      c.log.debug(`operator ${conn.peer.name} connected from ${conn.peer.remote}`)
      conn.once('close', () => c.log.debug(`operator ${conn.peer.name} disconnected`))
    }
    return {
      start: async () => { register(); t.events.on('connection', onConnection); actions.start() },
      stop: async () => { t.events.off('connection', onConnection); await endIdleThreads() }
    }
  }
}

/** What this node knows of the spec; the last rejection comes from a hub when this node has none (hubs see rejections first). */
async function specView (c: ControlComponents): Promise<SpecView> {
  const table = c.membership.table()
  let rejected = c.spec.lastRejected()
  if (rejected === undefined) {
    for (const hub of c.hubs.current().filter((h) => h !== c.membership.id)) {
      const m = table[hub]
      if (m === undefined) continue
      try {
        const conn = await c.transport.peer(m.address)
        rejected = (await call(conn, mesh, 'spec.status', undefined, { timeoutMs: 2000 })).rejected
        if (rejected !== undefined) break
      } catch (err) {
        c.log.debug(`cannot ask hub ${hub} for its spec status: ${String(err)}`)
      }
    }
  }
  // A rollout that waits (a build failing, a replica not getting ready) is part of the spec's story.
  const waiting = (await servicesView(c)).services.flatMap((s) => s.instances.flatMap((i) =>
    i.rollout === undefined && !(i.state === 'pending' && i.reason !== undefined) ? [] : [{ instance: i.instance, node: i.node, reason: i.rollout ?? i.reason ?? '' }]))
  return {
    answeredBy: c.membership.id,
    applied: c.spec.current()?.info,
    nodes: Object.values(table).sort((a, b) => (a.id < b.id ? -1 : 1)).map((m) => ({ id: m.id, status: m.status, spec: m.spec })),
    lastRejected: rejected === undefined
      ? undefined
      : { ...rejected, problems: problems(rejected), at: isoTime(rejected.at), error: specRejectedError({ ...rejected, problems: problems(rejected) }).toJSON() },
    rollout: waiting.length === 0 ? 'done' : 'waiting',
    waiting
  }
}

/** Logs from this node, or relayed from the node that has them. */
async function * relayLogs (c: ControlComponents, p: LogsRequest, signal: AbortSignal): AsyncIterable<LogItem> {
  if (p.node === c.membership.id) { yield * localLogs(c, p, signal); return }
  const m = c.membership.table()[p.node]
  if (m === undefined) throw new OriginError('E_NOT_FOUND', `no node "${p.node}" in the member table`, { node: p.node })
  if (m.status !== 'alive' && m.status !== 'suspect') throw new OriginError('E_UNREACHABLE', `node ${p.node} is ${m.status}`, { node: p.node })
  const conn = await c.transport.peer(m.address)
  const it = stream(conn, mesh, 'supervisor.logs', p)[Symbol.asyncIterator]()
  // A cancelled stream's pending next() never settles: the abort ends the wait instead.
  const aborted = new Promise<IteratorResult<LogItem>>((resolve) => {
    const stop = (): void => { void it.return?.(); resolve({ done: true, value: undefined }) }
    if (signal.aborted) stop()
    else signal.addEventListener('abort', stop, { once: true })
  })
  try {
    for (;;) {
      const r = await Promise.race([it.next(), aborted])
      if (r.done === true) return
      yield r.value
    }
  } finally {
    void it.return?.() // the caller went away: so does the stream from the other node
  }
}

/** A rejection's problems as data; a hub of an older version sends only lines, each a problem then. */
function problems (r: Rejection): Rejection['problems'] {
  return Array.isArray(r.problems) ? r.problems : r.errors.map((message) => ({ file: '', message }))
}
