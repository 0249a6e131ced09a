/**
 * The mesh connections a node has open, for stats: the ones other nodes and operators
 * opened to it (seen as the transport accepts them, by the role in their certificate), and
 * the ones it opened to other members (counted from /proc, see sockets.ts).
 */
import type { Membership } from '../membership'
import type { Connection, Transport } from '../transport/types'
import { connectionsTo } from './sockets'

export interface MeshCount {
  count (): Promise<{ in: number, out?: number, operators: number }>
}

export function meshCount (c: { transport: Pick<Transport, 'events'>, membership: Pick<Membership, 'id' | 'table'> }): MeshCount {
  const inbound = { node: new Set<Connection>(), operator: new Set<Connection>() }
  c.transport.events.on('connection', (conn: Connection) => {
    const set = inbound[conn.peer.role]
    set.add(conn)
    void conn.closed.then(() => set.delete(conn))
  })
  return {
    async count () {
      const peers = Object.values(c.membership.table())
        .filter((m) => m.id !== c.membership.id && (m.status === 'alive' || m.status === 'suspect'))
        .map((m) => m.address)
      const out = await connectionsTo(peers)
      const open = (s: Set<Connection>): number => [...s].filter((x) => x.isOpen).length
      return { in: open(inbound.node), ...(out === undefined ? {} : { out }), operators: open(inbound.operator) }
    }
  }
}
