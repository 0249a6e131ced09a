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
import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm, rmdir, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join, relative, resolve } from 'node:path'
import type { HubsView, NodeRow, SpecView } from '../node/control'
import type { ServicesView } from '../node/control/services'
import type { LogChunk, LogItem } from '../node/control/logs'
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

  /** Each follow in progress, by the function that stops it. */
  private readonly follows = new Set<() => Promise<void>>()

  /**
   * Download `service`'s logs on `node` to ./logs/<node>/<service>.log and return the path;
   * `open(path)` opens it in your editor. Every instance that ran there, running or not,
   * rotated parts included and in order; `'node'` is the node's own log. The download goes
   * to a temp file renamed into place once complete, so a failed one leaves no file and an
   * earlier download stays as it was. With `follow`, the file appears once the history has
   * arrived, and new lines are appended until `unfollow()`.
   */
  async logs (node: string, service: string, opts: LogsOptions = {}): Promise<string> {
    const path = resolve(join(opts.dir ?? 'logs', node, `${service}.log`))
    const since = opts.since instanceof Date ? opts.since.toISOString() : opts.since
    const follow = opts.follow === true
    const file = await LogDownload.create(path, node)
    const it = this.conn.stream<LogItem>('cluster.logs', { node, service, lines: opts.lines, since, follow })[Symbol.asyncIterator]()
    let r: IteratorResult<LogItem>
    try {
      // The history: until the stream ends, or with follow until the node says it caught up.
      for (r = await it.next(); r.done !== true && !('caughtUp' in r.value); r = await it.next()) await file.write(r.value)
      if (r.done === true) await file.close()
      await file.publish()
    } catch (err) {
      await it.return?.()
      await file.discard()
      throw err
    }
    if (r.done !== true) this.keepFollowing(it, file)
    return path
  }

  /** Appends what `it` brings to `file` until the stream ends or `unfollow()`. */
  private keepFollowing (it: AsyncIterator<LogItem>, file: LogDownload): void {
    let stopped!: (r: IteratorResult<LogItem>) => void
    // A cancelled stream's pending next() never settles: stopping ends the wait instead.
    const stop = new Promise<IteratorResult<LogItem>>((resolve) => { stopped = resolve })
    let finished!: () => void
    const done = new Promise<void>((resolve) => { finished = resolve })
    const unfollow = async (): Promise<void> => { stopped({ done: true, value: undefined }); await it.return?.(); await done }
    this.follows.add(unfollow)
    void (async () => {
      try {
        for (let r = await Promise.race([it.next(), stop]); r.done !== true; r = await Promise.race([it.next(), stop])) {
          if (!('caughtUp' in r.value)) await file.write(r.value)
        }
      } catch (err) {
        // Said where the operator looks: at the end of the file they are reading.
        await file.write({ instance: '', text: `# stopped following: ${err instanceof Error ? err.message : String(err)}\n` }).catch(() => {})
      } finally {
        this.follows.delete(unfollow)
        await file.close().catch(() => {})
        finished()
      }
    })()
  }

  /** Stop following every log (the files stay as they are). */
  async unfollow (): Promise<void> {
    await Promise.all([...this.follows].map(async (stop) => await stop()))
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

/**
 * One log download: written to a temp file beside the target (same directory, so the
 * rename is atomic) and renamed into place by `publish()`; `discard()` removes the temp
 * file and the directories this download created, if empty.
 */
class LogDownload {
  private last: string | undefined
  private closed = false

  private constructor (readonly path: string, private readonly temp: string, private readonly fh: FileHandle, private readonly node: string, private readonly createdDir: string | undefined) {}

  static async create (path: string, node: string): Promise<LogDownload> {
    const createdDir = await mkdir(dirname(path), { recursive: true })
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.part`)
    return new LogDownload(path, temp, await open(temp, 'wx'), node, createdDir)
  }

  /** Appends a chunk, with a `# <instance> on <node>` line where the instance changes. */
  async write (c: LogChunk): Promise<void> {
    if (c.instance !== '' && c.instance !== this.last) {
      await this.fh.write(`# ${c.instance} on ${this.node}\n`)
      this.last = c.instance
    }
    await this.fh.write(c.text)
  }

  /** Puts the download in place; a file still open keeps being appended to under its new name. */
  async publish (): Promise<void> {
    await rename(this.temp, this.path)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.fh.close()
  }

  async discard (): Promise<void> {
    await this.close().catch(() => {})
    await rm(this.temp, { force: true })
    if (this.createdDir === undefined) return
    // Only the directories made for this download, innermost first, and only while empty.
    for (let dir = dirname(this.path); !relative(this.createdDir, dir).startsWith('..'); dir = dirname(dir)) {
      try { await rmdir(dir) } catch { return }
      if (dir === this.createdDir) return
    }
  }
}
