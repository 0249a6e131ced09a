/**
 * control: the operator RPC. Methods here need an `operator` certificate; what they
 * return is plain data the REPL renders (and `origin repl -e` prints as JSON).
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
import type { Hubs, HubPolicy } from '../hubs'
import type { Logger } from '../log'
import type { Membership, MemberStatus } from '../membership'
import type { Transport } from '../transport'
import type { SpecLayer, SyncResult, Rejection } from '../desired'
import type { CommitInfo } from '../git/store'
import type { Supervisor } from '../supervisor'
import { servicesView } from './services'
import { localLogs, logsPayload, type LogItem, type LogsRequest } from './logs'
import { OriginError } from '../errors'
import { certificateExpiry, type CertificateExpiry } from '../keys/expiry'
import { clusterStats } from './cluster-stats'
import { meshCount } from './mesh'
import { StatsSampler } from './stats'
import type { Journal } from '../journal'
import { clusterEvents, clusterReplay, eventsPayload, journalReadPayload, statePayload, type EventsRequest } from './events'
import { registerActions } from './actions'
import { endIdleThreads } from './eval'

export interface NodeRow {
  id: string
  address: string
  status: MemberStatus
  hub: boolean
  cpus: number
  memoryMb: number
  arch: string
  labels: Record<string, string>
  startedAt: number
  incarnation: number
  /** `pid-namespace`: nothing an instance starts outlives it; `process-group`: a process that leaves its group may. */
  containment?: string
  /** Names of the secrets its image carries. */
  secrets?: string[]
  /** Its node certificate: serial, expiry, and `ok` / `soon` / `expired` with what to do. */
  certificate?: CertificateExpiry
  /** An operator drained it (`cluster.drain`): it hosts nothing until undrained. */
  drained?: true
  /** It says it cannot do its job, and why (node/health): singletons move off it, nothing new goes there. */
  unhealthy?: string
}

export interface HubsView { hubs: string[], policy: HubPolicy, answeredBy: string }

export interface SpecView {
  answeredBy: string
  applied?: CommitInfo
  nodes: Array<{ id: string, status: MemberStatus, spec?: string }>
  lastRejected?: Omit<Rejection, 'at'> & { at: string }
  /** `done` when every instance runs what the applied spec asks; `waiting` with the reasons otherwise. */
  rollout: 'done' | 'waiting'
  /** Instances not (yet) running the applied spec's version, and why (`build failed: ...`). */
  waiting: Array<{ instance: string, node: string, reason: string }>
}

export interface ControlComponents { transport: Transport, membership: Membership, hubs: Hubs, spec: SpecLayer, supervisor: Supervisor, dataDir: string, log: Logger, journal?: Journal }

export function control () {
  return (c: ControlComponents) => {
    const sampler = new StatsSampler({ dataDir: c.dataDir, membership: c.membership, supervisor: c.supervisor, mesh: meshCount(c) })
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
          certificate: m.characteristics.certificate === undefined
            ? undefined
            : certificateExpiry({ serial: m.characteristics.certificate.serial, notAfter: new Date(m.characteristics.certificate.notAfter) }, Date.now())
        }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    }
    c.transport.handle({ kind: 'unary', name: 'cluster.nodes', role: 'operator', handler: nodes })
    c.transport.handle({
      kind: 'unary',
      name: 'cluster.hubs',
      role: 'operator',
      handler: (): HubsView => ({ hubs: c.hubs.current(), policy: c.hubs.policy(), answeredBy: c.membership.id })
    })
    c.transport.handle({ kind: 'unary', name: 'cluster.spec', role: 'operator', handler: async () => await specView(c) })
    c.transport.handle({
      kind: 'unary',
      name: 'cluster.sync',
      role: 'operator',
      handler: async (_p: unknown, ctx): Promise<SyncResult[]> => {
        c.journal?.record({ kind: 'operator', operator: ctx.peer.name, action: 'sync' })
        return await c.spec.sync()
      }
    })
    c.transport.handle({ kind: 'unary', name: 'cluster.services', role: 'operator', handler: async () => await servicesView(c) })
    c.transport.handle({
      kind: 'unary',
      name: 'cluster.where',
      role: 'operator',
      payload: { type: 'object', additionalProperties: false, required: ['service'], properties: { service: { type: 'string', maxLength: 63 } } },
      handler: async (p: { service: string }) => {
        const v = await servicesView(c, p.service)
        if (v.services.length === 0) throw new OriginError('E_NOT_FOUND', `no service "${p.service}" in the applied spec`, { service: p.service })
        return v
      }
    })
    c.transport.handle({ kind: 'unary', name: 'supervisor.report', role: 'node', handler: () => c.supervisor.report() })
    c.transport.handle({ kind: 'stream', name: 'supervisor.logs', role: 'node', payload: logsPayload, handler: (p: LogsRequest, ctx) => localLogs(c, p, ctx.signal) })
    c.transport.handle({
      kind: 'stream',
      name: 'cluster.logs',
      role: 'operator',
      payload: logsPayload,
      handler: (p: LogsRequest, ctx) => relayLogs(c, p, ctx.signal)
    })
    c.transport.handle({
      kind: 'unary',
      name: 'cluster.ops',
      role: 'operator',
      handler: () => ({ version: c.spec.current()?.version ?? '', files: c.spec.current()?.spec.ops ?? {} })
    })
    c.transport.handle({
      kind: 'unary',
      name: 'cluster.forget',
      role: 'operator',
      payload: { type: 'object', additionalProperties: false, required: ['node'], properties: { node: { type: 'string', maxLength: 63 } } },
      handler: (p: { node: string }, ctx) => {
        c.log.info(`operator ${ctx.peer.name} forgets ${p.node}`)
        c.journal?.record({ kind: 'operator', operator: ctx.peer.name, action: 'forget', detail: p.node })
        c.membership.forget(p.node)
        return { forgotten: p.node }
      }
    })
    c.transport.handle({ kind: 'unary', name: 'stats.node', role: 'node', handler: async () => await sampler.collect() })
    c.transport.handle({ kind: 'unary', name: 'cluster.stats', role: 'operator', handler: async () => await clusterStats({ ...c, sampler }) })
    const j = c.journal
    if (j !== undefined) {
      const ec = { ...c, journal: j }
      c.transport.handle({ kind: 'unary', name: 'journal.read', role: 'node', payload: journalReadPayload, handler: async (p: EventsRequest) => await j.read(p) })
      c.transport.handle({ kind: 'unary', name: 'cluster.events', role: 'operator', payload: eventsPayload, handler: async (p: EventsRequest) => await clusterEvents(ec, p) })
      c.transport.handle({ kind: 'unary', name: 'cluster.replay', role: 'operator', payload: statePayload, handler: async (p: { at: number }) => await clusterReplay(ec, p.at) })
    }
    c.transport.handle({ kind: 'unary', name: 'cluster.ping', role: 'operator', handler: () => ({ node: c.membership.id, at: Date.now() }) })
    const actions = registerActions(c)
    c.transport.events.on('connection', (conn) => {
      if (conn.peer.role !== 'operator') return
      c.log.debug(`operator ${conn.peer.name} connected from ${conn.peer.remote}`)
      conn.once('close', () => c.log.debug(`operator ${conn.peer.name} disconnected`))
    })
    return { start: async () => { sampler.start(); actions.start() }, stop: async () => { sampler.stop(); await endIdleThreads() } }
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
        rejected = (await conn.call<{ rejected?: Rejection }>('spec.status', undefined, { timeoutMs: 2000 })).rejected
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
    lastRejected: rejected === undefined ? undefined : { ...rejected, at: new Date(rejected.at).toISOString() },
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
  const it = conn.stream<LogItem>('supervisor.logs', p)[Symbol.asyncIterator]()
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
