/**
 * control: the operator RPC. Methods here need an `operator` certificate; what they
 * return is plain data the REPL renders (and `origin repl -e` prints as JSON).
 *
 *   cluster.nodes  -> NodeRow[]   the member table as this node sees it
 *   cluster.hubs   -> HubsView    the hub set and the policy that chose it
 *   cluster.ping   -> { node, at } which node answered, and its clock
 */
import type { Hubs, HubPolicy } from '../hubs'
import type { Logger } from '../log'
import type { Membership, MemberStatus } from '../membership'
import type { Transport } from '../transport'

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
}

export interface HubsView { hubs: string[], policy: HubPolicy, answeredBy: string }

export interface ControlComponents { transport: Transport, membership: Membership, hubs: Hubs, log: Logger }

export function control () {
  return (c: ControlComponents) => {
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
          incarnation: m.incarnation
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
    c.transport.handle({ kind: 'unary', name: 'cluster.ping', role: 'operator', handler: () => ({ node: c.membership.id, at: Date.now() }) })
    c.transport.events.on('connection', (conn) => {
      if (conn.peer.role !== 'operator') return
      c.log.info(`operator ${conn.peer.name} connected from ${conn.peer.remote}`)
      conn.once('close', () => c.log.info(`operator ${conn.peer.name} disconnected`))
    })
    return { start: async () => {}, stop: async () => {} }
  }
}
