/**
 * What runs where, as an operator asks it: every service with its instances (node,
 * status and why, restarts, uptime), what could not be placed and why, and the phase.
 * Details come from each node that runs instances (`supervisor.report` over the mesh);
 * a node that does not answer is shown from what gossip says of it.
 */
import type { Membership } from '../membership'
import { serviceOfInstance, type Phase } from '../scheduler'
import type { Supervisor, InstanceReport } from '../supervisor'
import type { Transport } from '../transport'
import type { Logger } from '../log'

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

export interface ServicesComponents { transport: Transport, membership: Membership, supervisor: Supervisor, log: Logger }

export async function servicesView (c: ServicesComponents, only?: string): Promise<ServicesView> {
  const sched = c.supervisor.current()
  const table = c.membership.table()
  const self = c.membership.id
  const nodes = Object.values(table).filter((m) => (m.status === 'alive' || m.status === 'suspect') && Object.keys(m.instances ?? {}).length > 0)
  const reports = await Promise.all(nodes.map(async (m): Promise<InstanceReport[]> => {
    if (m.id === self) return c.supervisor.report()
    try {
      const conn = await c.transport.peer(m.address)
      return await conn.call<InstanceReport[]>('supervisor.report', undefined, { timeoutMs: 2000 })
    } catch (err) {
      c.log.debug(`no report from ${m.id}: ${String(err)}`)
      return Object.entries(m.instances ?? {}).map(([instance, s]) => ({
        instance,
        service: '',
        node: m.id,
        version: s.v,
        status: { state: s.s as InstanceReport['status']['state'], restarts: 0, reason: 'from gossip: the node did not answer' },
        port: Number(/:(\d+)$/.exec(s.a ?? '')?.[1] ?? 0),
        ports: {},
        address: s.a ?? '',
        logPath: ''
      }))
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
