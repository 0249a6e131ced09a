/**
 * What runs where, as an operator asks it: every service with its instances (node,
 * status and why, restarts, uptime), what could not be placed and why, and the phase.
 * Details come from each alive node that runs instances (`supervisor.report` over the
 * mesh); a node that does not answer is shown from what gossip says of it. An instance
 * on a suspect node is `unknown` and on a dead one `lost` (`onMember`), with why: what it
 * last said is not what it is.
 */
import { systemClock, type Clock } from '../clock'
import type { Member, MemberStatus, Membership } from '../membership'
import { instanceState } from '../vocabulary'
import { serviceOfInstance, type Phase } from '../scheduler'
import type { Supervisor, InstanceReport } from '../supervisor/types'
import type { Transport } from '../transport/types'
import type { Logger } from '../log'
import { call } from '../protocol/table'
import { mesh } from '../protocol/mesh'

export interface InstanceView {
  instance: string
  node: string
  state: string
  reason?: string
  restarts?: number
  startedAt?: number
  version: string
  /** `host:port` of its first port, reachable from other nodes (loopback for `bind: loopback`). */
  address?: string
  /** Its first port (PORT). */
  port?: number
  /** Every port by name. */
  ports?: Record<string, number>
  /** Why it does not run the version the spec asks for, while a rollout waits (`build failed: ...`). */
  rollout?: string
  /** What happened to its state directory when it started. */
  stateNote?: string
}

export interface ServiceView {
  name: string
  placement: string
  instances: InstanceView[]
  unschedulable: Array<{ instance?: string, reason: string }>
}

export interface ServicesView { answeredBy: string, phase?: Phase, services: ServiceView[] }

export interface ServicesComponents { transport: Transport, membership: Membership, supervisor: Supervisor, log: Logger, clock?: Clock }

export async function servicesView (c: ServicesComponents, only?: string): Promise<ServicesView> {
  const sched = c.supervisor.current()
  const table = c.membership.table()
  const self = c.membership.id
  const since = statusSince(c.membership, c.clock ?? systemClock)
  const nodes = Object.values(table).filter((m) => m.status !== 'left' && Object.keys(m.instances ?? {}).length > 0)
  const reports = await Promise.all(nodes.map(async (m): Promise<InstanceReport[]> => {
    if (m.id === self) return c.supervisor.report()
    // Not asked: it has not been heard from, and what it last said is all there is.
    if (m.status !== 'alive') return fromGossip(m, (said) => onMember(m, said, since.of(m.id, m.status)))
    // A node that stops answering is soon suspect: then its gossip entry is the answer, at once.
    const judged = untilNotAlive(c.membership, m.id)
    try {
      // Connecting is raced too: a stopped node's kernel still takes the connection, and the handshake then waits.
      const asked = (async () => await call(await c.transport.peer(m.address), mesh, 'supervisor.report', undefined, { timeoutMs: 2000 }))()
      asked.catch(() => {})
      const r = await Promise.race([asked, judged.promise])
      if (r !== undefined) return r
      const now = c.membership.table()[m.id] ?? m
      return fromGossip(now, (said) => onMember(now, said, since.of(now.id, now.status)))
    } catch (err) {
      c.log.debug(`no report from ${m.id}: ${String(err)}`)
      return fromGossip(m, (said) => ({ state: said, reason: 'from gossip: the node did not answer' }))
    } finally {
      judged.cancel()
    }
  }))
  const byInstance = new Map(reports.flat().map((r) => [`${r.node}/${r.instance}`, r]))
  const services = new Map<string, ServiceView>()
  const serviceView = (name: string): ServiceView => {
    let v = services.get(name)
    if (v === undefined) {
      v = { name, placement: sched === undefined ? '?' : placementOf(c, name), instances: [], unschedulable: [] }
      services.set(name, v)
    }
    return v
  }
  for (const a of sched?.assignments ?? []) {
    const r = byInstance.get(`${a.node}/${a.instance}`)
    byInstance.delete(`${a.node}/${a.instance}`)
    serviceView(a.service).instances.push(r === undefined
      ? { instance: a.instance, node: a.node, state: 'pending', reason: 'assigned; not started yet', version: '' }
      : view(r))
  }
  // Instances still running where they are no longer assigned (being stopped, handed over).
  for (const r of byInstance.values()) {
    const name = r.service !== '' ? r.service : serviceOfInstance(r.instance)
    serviceView(name).instances.push({ ...view(r), reason: r.status.reason ?? 'no longer assigned here' })
  }
  for (const u of sched?.unschedulable ?? []) serviceView(u.service).unschedulable.push({ instance: u.instance, reason: u.reason })
  const list = [...services.values()].filter((s) => only === undefined || s.name === only).sort((a, b) => (a.name < b.name ? -1 : 1))
  return { answeredBy: self, phase: sched?.phase, services: list }
}

/** A member's instances as its gossip entry tells them, each state and reason as `judge` says. */
function fromGossip (m: Member, judge: (said: string) => { state: string, reason: string }): InstanceReport[] {
  return Object.entries(m.instances ?? {}).map(([instance, s]) => {
    const { state, reason } = judge(s.state)
    return {
      instance,
      service: '',
      node: m.id,
      version: s.version,
      status: { state: state as InstanceReport['status']['state'], restarts: 0, reason },
      port: Number(/:(\d+)$/.exec(s.address ?? '')?.[1] ?? 0),
      ports: {},
      address: s.address ?? '',
      logPath: ''
    }
  })
}

/**
 * Pure: an instance's state and why, from its member's status and what it last said:
 * `unknown` on a suspect member (it may have stopped with its node), `lost` on a dead one
 * (it starts elsewhere). `forMs`: how long the member has had that status, when known.
 */
export function onMember (m: Pick<Member, 'id' | 'status'>, said: string, forMs: number | undefined): { state: string, reason: string } {
  const state = instanceState(m.status, said)
  const lasted = forMs === undefined ? '' : ` for ${(forMs / 1000).toFixed(1)} s`
  if (m.status === 'suspect') return { state, reason: `node ${m.id} is suspect${lasted}: not heard from, so it may have stopped; it last said ${said}` }
  if (m.status === 'dead' || m.status === 'left') return { state, reason: `node ${m.id} is ${m.status}${lasted}: the instance is lost and starts elsewhere; it last said ${said}` }
  return { state, reason: '' }
}

/**
 * Since when each member has had its status, as this node saw it change: watched from the
 * first view asked on this node (a status it already had then has no known start).
 */
class StatusSince {
  private readonly at = new Map<string, { status: MemberStatus, at?: number }>()
  constructor (membership: Pick<Membership, 'table' | 'events'>, private readonly clock: Clock) {
    this.update(membership.table(), undefined)
    membership.events.on('change', (table: ReturnType<Membership['table']>) => this.update(table, this.clock.now()))
  }

  private update (table: ReturnType<Membership['table']>, now: number | undefined): void {
    for (const m of Object.values(table)) {
      if (this.at.get(m.id)?.status !== m.status) this.at.set(m.id, { status: m.status, at: now })
    }
    for (const id of this.at.keys()) if (!Object.hasOwn(table, id)) this.at.delete(id)
  }

  /** How long `id` has had `status` (ms), when known. */
  of (id: string, status: MemberStatus): number | undefined {
    const s = this.at.get(id)
    return s?.status !== status || s.at === undefined ? undefined : this.clock.now() - s.at
  }
}

/** Resolves (with undefined) once member `id` is no longer alive in the table. */
function untilNotAlive (membership: Pick<Membership, 'events'>, id: string): { promise: Promise<undefined>, cancel: () => void } {
  let off = (): void => {}
  const promise = new Promise<undefined>((resolve) => {
    const onChange = (table: ReturnType<Membership['table']>): void => { if (table[id]?.status !== 'alive') { off(); resolve(undefined) } }
    membership.events.on('change', onChange)
    off = () => membership.events.off('change', onChange)
  })
  return { promise, cancel: () => off() }
}

const watched = new WeakMap<object, StatusSince>()
function statusSince (membership: Pick<Membership, 'table' | 'events'>, clock: Clock): StatusSince {
  let s = watched.get(membership.events)
  if (s === undefined) { s = new StatusSince(membership, clock); watched.set(membership.events, s) }
  return s
}

function view (r: InstanceReport): InstanceView {
  const v: InstanceView = { instance: r.instance, node: r.node, state: r.status.state, reason: r.status.reason, restarts: r.status.restarts, startedAt: r.status.startedAt, version: r.version }
  if (r.address !== '') { v.address = r.address; v.port = r.port; v.ports = r.ports }
  if (r.rollout !== undefined) v.rollout = r.rollout
  if (r.state !== undefined) v.stateNote = r.state
  return v
}

function placementOf (c: ServicesComponents, name: string): string {
  return c.supervisor.placement(name) ?? '?'
}
