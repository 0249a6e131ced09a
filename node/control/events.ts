/**
 * `cluster.events` and `cluster.state`: the node an operator is connected to asks every
 * member for its journal at once (`journal.read` over the mesh) and merges the answers in
 * time order; a member that does not answer is named with why. `cluster.state({ at })`
 * replays the merged journals up to that moment.
 */
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { Transport } from '../transport/types'
import { compareEvents, replay, type Journal, type JournalEvent, type JournalQuery, type Replayed } from '../journal'
import { call } from '../protocol/table'
import { mesh } from '../protocol/mesh'

export interface EventsRequest extends JournalQuery {
  /** Only this node's journal. */
  node?: string
}

export interface EventsView {
  answeredBy: string
  events: JournalEvent[]
  /** Members whose journal could not be read, and why. */
  unreachable: Array<{ node: string, reason: string }>
}

export interface ReplayView { answeredBy: string, replayed: Replayed, recent: JournalEvent[], unreachable: EventsView['unreachable'] }

export interface EventsComponents {
  transport: Pick<Transport, 'peer'>
  membership: Pick<Membership, 'id' | 'table'>
  journal: Pick<Journal, 'read'>
  log: Logger
}

/** How long one node's journal may take to arrive. @default 10000 */
export const eventsTimeoutMs = 10_000

export async function clusterEvents (c: EventsComponents, p: EventsRequest): Promise<EventsView> {
  const { node, ...q } = p
  const members = Object.values(c.membership.table()).filter((m) => (node === undefined ? m.status !== 'left' : m.id === node))
  const unreachable: EventsView['unreachable'] = []
  const lists = await Promise.all(members.map(async (m): Promise<JournalEvent[]> => {
    if (m.id === c.membership.id) return await c.journal.read(q)
    if (m.status === 'dead' || m.status === 'left') { unreachable.push({ node: m.id, reason: `${m.status}: its journal stays on its disk` }); return [] }
    try {
      const conn = await c.transport.peer(m.address)
      return await call(conn, mesh, 'journal.read', q, { timeoutMs: eventsTimeoutMs })
    } catch (err) {
      c.log.debug(`no journal from ${m.id}: ${errorMessage(err)}`)
      unreachable.push({ node: m.id, reason: errorMessage(err) })
      return []
    }
  }))
  let events = lists.flat().sort(compareEvents)
  if (q.limit !== undefined) events = events.slice(-q.limit)
  return { answeredBy: c.membership.id, events, unreachable: unreachable.sort((a, b) => (a.node < b.node ? -1 : 1)) }
}

/** The cluster at `at`, from every reachable node's journal. */
export async function clusterReplay (c: EventsComponents, at: number): Promise<ReplayView> {
  const v = await clusterEvents(c, { until: at })
  return { answeredBy: v.answeredBy, replayed: replay(v.events, at), recent: v.events.slice(-30), unreachable: v.unreachable }
}
