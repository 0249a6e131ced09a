/**
 * `cluster.stats`: the node an operator is connected to asks every member at once
 * (`stats.node` over the mesh), each answers for itself, and a member that is dead or
 * does not answer in time is listed as unreachable with the reason. Members that left are
 * not listed.
 */
import { systemClock, within, type Clock } from '../clock'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import type { Member, Membership } from '../membership'
import type { Transport } from '../transport/types'
import type { NodeStatsRow, StatsSampler, StatsView, UnreachableNode } from './stats'
import { call } from '../protocol/table'
import { mesh } from '../protocol/mesh'

export interface ClusterStatsComponents {
  transport: Pick<Transport, 'peer'>
  membership: Pick<Membership, 'id' | 'table'>
  sampler: Pick<StatsSampler, 'collect'>
  log: Logger
  /** What the answers' time limit runs on. @default systemClock */
  clock?: Clock
}

/** How long one node's answer may take; a first answer measures its CPU over a short window. @default 3000 */
export const statsTimeoutMs = 3000

export async function clusterStats (c: ClusterStatsComponents, timeoutMs = statsTimeoutMs): Promise<StatsView> {
  const clock = c.clock ?? systemClock
  const members = Object.values(c.membership.table()).filter((m) => m.status !== 'left').sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const nodes = await Promise.all(members.map(async (m): Promise<NodeStatsRow> => {
    if (m.id === c.membership.id) return await c.sampler.collect()
    if (m.status === 'dead') return unreachable(m, 'dead (no heartbeat)')
    const ask = (async (): Promise<NodeStatsRow> => {
      try {
        const conn = await c.transport.peer(m.address)
        return await call(conn, mesh, 'stats.node', undefined, { timeoutMs })
      } catch (err) {
        c.log.debug(`no stats from ${m.id}: ${errorMessage(err)}`)
        return unreachable(m, errorMessage(err))
      }
    })()
    return await within(clock, timeoutMs, ask) ?? unreachable(m, `no answer within ${timeoutMs / 1000} s`)
  }))
  return { answeredBy: c.membership.id, at: clock.now(), nodes }
}

function unreachable (m: Member, reason: string): UnreachableNode {
  return { node: m.id, address: m.address, status: 'unreachable', reason: m.status === 'suspect' ? `suspect; ${reason}` : reason }
}
