/**
 * The `cluster` object the REPL puts in scope: a connection to one node, with the
 * operator's certificate, and one method per thing an operator asks.
 *
 * @example
 *   const cluster = await connectCluster({ keys: './keys', as: 'alice', address: '10.0.0.4:7400' })
 *   await cluster.nodes()
 */
import { loadIdentity } from '../node/keys/files'
import { connectTo, type Connection } from '../node/transport'
import { createWriteStream } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { HubsView, NodeRow, SpecView } from '../node/control'
import type { ServicesView } from '../node/control/services'
import type { LogChunk } from '../node/control/logs'
import type { SyncResult } from '../node/spec'
import { HubSet, NodeTable, SpecReport, SyncReport, ServicesReport } from './render'

export interface LogsOptions {
  /** Only the last N lines. */
  lines?: number
  /** Only lines written since then (a Date or an ISO string). */
  since?: Date | string
  /** Keep appending new lines to the file until `cluster.unfollow()` or the session ends. */
  follow?: boolean
  /** Where logs go. @default ./logs */
  dir?: string
}

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

  /** Every service: its instances (node, status and why, restarts, uptime), what could not be placed, and the phase. */
  async services (): Promise<ServicesReport> {
    return new ServicesReport(await this.conn.call<ServicesView>('cluster.services'))
  }

  /** Where one service runs, and the phase. */
  async where (service: string): Promise<ServicesReport> {
    return new ServicesReport(await this.conn.call<ServicesView>('cluster.where', { service }))
  }

  /** The phase and why: `forming: 2 of 3 nodes`, `running: ...`, `degraded: ...`. */
  async phase (): Promise<string> {
    return (await this.conn.call<ServicesView>('cluster.services')).phase?.reason ?? 'no spec applied yet'
  }

  private readonly follows = new Set<AsyncIterator<LogChunk>>()

  /**
   * Download `service`'s log on `node` (rotated parts included, in order) to
   * ./logs/<node>/<service>.log and return the path; `open(path)` opens it in your editor.
   */
  async logs (node: string, service: string, opts: LogsOptions = {}): Promise<string> {
    const path = resolve(join(opts.dir ?? 'logs', node, `${service}.log`))
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, '')
    const since = opts.since instanceof Date ? opts.since.toISOString() : opts.since
    const it = this.conn.stream<LogChunk>('cluster.logs', { node, service, lines: opts.lines, since, follow: opts.follow === true })[Symbol.asyncIterator]()
    const out = createWriteStream(path, { flags: 'a' })
    let last = ''
    const write = (c: LogChunk): void => {
      if (c.instance !== last) { out.write(`# ${c.instance} on ${node}\n`); last = c.instance }
      out.write(c.text)
    }
    if (opts.follow !== true) {
      try {
        for (let r = await it.next(); r.done !== true; r = await it.next()) write(r.value)
      } finally {
        await new Promise<void>((resolve) => out.end(() => resolve()))
      }
      return path
    }
    this.follows.add(it)
    void (async () => {
      try {
        for (let r = await it.next(); r.done !== true; r = await it.next()) write(r.value)
      } catch {} finally {
        this.follows.delete(it)
        out.end()
      }
    })()
    return path
  }

  /** Stop following every log. */
  async unfollow (): Promise<void> {
    await Promise.all([...this.follows].map(async (it) => await it.return?.()))
  }

  /** A dead node is gone for good: it becomes `left` and stops counting against the singleton majority. */
  async forget (node: string): Promise<{ forgotten: string }> {
    return await this.conn.call<{ forgotten: string }>('cluster.forget', { node })
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
