/**
 * The `cluster` object the REPL puts in scope: a connection to one node, with the
 * operator's certificate, and one method per thing an operator asks.
 *
 * @example
 *   const cluster = await connectCluster({ keys: './keys', as: 'alice', address: '10.0.0.4:7400' })
 *   await cluster.nodes()
 */
import { loadIdentity } from '../node/keys'
import { connectTo, type Connection } from '../node/transport'
import type { HubsView, NodeRow, SpecView } from '../node/control'
import type { SyncResult } from '../node/spec'
import { HubSet, NodeTable, SpecReport, SyncReport } from './render'

export interface ConnectOptions {
  /** Keys directory holding ca.crt and operators/NAME.crt + NAME.key. */
  keys: string
  /** Operator name (the certificate to use). */
  as: string
  /** host:port of any node. */
  address: string
  timeoutMs?: number
}

export class Cluster {
  constructor (private readonly conn: Connection, readonly address: string) {}

  /** The member table as the connected node sees it. */
  async nodes (): Promise<NodeTable> {
    return NodeTable.fromRows(await this.conn.call<NodeRow[]>('cluster.nodes'))
  }

  /** The hub set, strongest first, and the policy that chose it. */
  async hubs (): Promise<HubSet> {
    return new HubSet(await this.conn.call<HubsView>('cluster.hubs'))
  }

  /** The spec: the commit applied, which version each node runs, the last rejected commit and why. */
  async spec (): Promise<SpecReport> {
    return new SpecReport(await this.conn.call<SpecView>('cluster.spec'))
  }

  /** Fetch the spec repo now instead of waiting for the next poll; what each hub did. */
  async sync (): Promise<SyncReport> {
    return SyncReport.fromResults(await this.conn.call<SyncResult[]>('cluster.sync', undefined, { timeoutMs: 60_000 }))
  }

  /** Which node answered, and the round trip in ms. */
  async ping (): Promise<{ node: string, ms: number }> {
    const t0 = performance.now()
    const r = await this.conn.call<{ node: string }>('cluster.ping')
    return { node: r.node, ms: Math.round((performance.now() - t0) * 1000) / 1000 }
  }

  /** Call any operator method by name (for what has no helper yet). */
  async call<R = unknown>(method: string, payload?: unknown): Promise<R> {
    return await this.conn.call<R>(method, payload)
  }

  get connected (): boolean { return this.conn.isOpen }
  get closed (): Promise<void> { return this.conn.closed }
  close (): void { this.conn.close('operator done') }
}

export async function connectCluster (o: ConnectOptions): Promise<Cluster> {
  const id = await loadIdentity({ keys: o.keys, as: o.as })
  const conn = await connectTo(o.address, { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }, { connectTimeoutMs: o.timeoutMs })
  return new Cluster(conn, o.address)
}
