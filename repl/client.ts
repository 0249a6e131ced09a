/**
 * The `cluster` object the REPL puts in scope: a connection to one node (another member
 * when that one goes away, in a session), with the operator's certificate, and one method
 * per thing an operator asks. The methods are listed, with an example each, in catalog.ts.
 *
 * @example
 *   const cluster = await connectCluster({ keys: './keys', as: 'alice', address: '10.0.0.4:7400' })
 *   await cluster.nodes()
 */
import { inspect } from 'node:util'
import { join, resolve } from 'node:path'
import { loadIdentity } from '../node/keys/files'
import type { HubsView, NodeRow, SpecView } from '../node/control'
import type { ServicesView } from '../node/control/services'
import type { LogItem } from '../node/control/logs'
import type { StatsView } from '../node/control/stats'
import type { SyncResult } from '../node/spec'
import { OriginError } from '../node/errors'
import { Help, clusterList, methodHelp } from './catalog'
import { LogDownload, downloadService } from './download'
import { Link } from './link'
import { HubSet, NodeTable, SpecReport, SyncReport, ServicesReport } from './render'
import { plainScreen, type Screen } from './screen'
import { sinceToIso } from './since'
import { StatsReport, mib, watchStats } from './stats'

export interface LogsOptions {
  /** Only the last N lines. */
  lines?: number
  /** Only lines written since then: '10m', '2h', '1d', a Date, a date or an ISO string. */
  since?: Date | string
  /** Keep appending new lines to the file until `cluster.unfollow()` or the session ends (one node only). */
  follow?: boolean
  /** Where logs go. @default ./logs */
  dir?: string
}

export interface StatsOptions {
  /** Refresh every this many ms, in place, until Ctrl-C. */
  watch?: number
}

export interface ConnectOptions {
  /** Keys directory holding ca.crt and operators/NAME.crt + NAME.key. */
  keys: string
  /** Operator name (the certificate to use). */
  as: string
  /** host:port of any node. */
  address: string
  timeoutMs?: number
  /** When the node leaves or dies, go on with another member (the interactive session does). @default false */
  reconnect?: boolean
}

export class Cluster {
  readonly #link: Link
  readonly #as: string
  #screen: Screen = plainScreen
  /** Each follow in progress, by the function that stops it. */
  readonly #follows = new Set<() => Promise<void>>()

  constructor (link: Link, as: string) {
    this.#link = link
    this.#as = as
  }

  /** host:port of the node the session is on. */
  get address (): string { return this.#link.address }
  /** Id of the node the session is on. */
  get node (): string { return this.#link.node }
  /** The operator name. */
  get as (): string { return this.#as }
  /** The connection, for the session: reconnection events. */
  get link (): Link { return this.#link }
  get connected (): boolean { return this.#link.isOpen }
  get closed (): Promise<void> { return this.#link.closed }
  /** Where watch frames, progress and notes go (the session's terminal). */
  attach (screen: Screen): void { this.#screen = screen }

  /** The member table as the connected node sees it. */
  async nodes (): Promise<NodeTable> {
    const rows = await this.#link.call<NodeRow[]>('cluster.nodes')
    this.#link.remember(rows)
    return NodeTable.fromRows(rows)
  }

  /** The hub set, strongest first, and the policy that chose it. */
  async hubs (): Promise<HubSet> {
    return new HubSet(await this.#link.call<HubsView>('cluster.hubs'))
  }

  /** The spec: the commit applied, which version each node runs, the last rejected commit and why. */
  async spec (): Promise<SpecReport> {
    return new SpecReport(await this.#link.call<SpecView>('cluster.spec'))
  }

  /** Fetch the spec repo now instead of waiting for the next poll; what each hub did. */
  async sync (): Promise<SyncReport> {
    return SyncReport.fromResults(await this.#link.call<SyncResult[]>('cluster.sync', undefined, { timeoutMs: 60_000 }))
  }

  /** Every service: its instances (node, status and why, restarts, uptime), what could not be placed, and the phase. */
  async services (): Promise<ServicesReport> {
    return new ServicesReport(await this.#link.call<ServicesView>('cluster.services'))
  }

  /** Where one service runs, and the phase. */
  async where (service: string): Promise<ServicesReport> {
    return new ServicesReport(await this.#link.call<ServicesView>('cluster.where', { service }))
  }

  /** The phase and why: `forming: 2 of 3 nodes`, `running: ...`, `degraded: ...`. */
  async phase (): Promise<string> {
    return (await this.#link.call<ServicesView>('cluster.services')).phase?.reason ?? 'no spec applied yet'
  }

  /**
   * Every node's CPU, memory, load, free disk, event-loop delay and mesh connections, and
   * each instance's CPU, memory, restarts, uptime and port; unreachable nodes say why.
   * With `{ watch: ms }`, redrawn in place until Ctrl-C (resolves with the last).
   */
  async stats (opts?: { watch?: undefined }): Promise<StatsReport>
  async stats (opts: StatsOptions): Promise<StatsReport | undefined>
  async stats (opts: StatsOptions = {}): Promise<StatsReport | undefined> {
    const once = async (): Promise<StatsReport> => new StatsReport(await this.#link.call<StatsView>('cluster.stats', undefined, { timeoutMs: 15_000 }))
    if (opts.watch === undefined) return await once()
    if (!Number.isFinite(opts.watch) || opts.watch < 250) throw new OriginError('E_ARGS', `stats: watch is the refresh period in ms, 250 or more; got ${String(opts.watch)}`)
    return await watchStats(once, opts.watch, this.#screen)
  }

  /**
   * Download logs and return the path; `open(path)` opens it in your editor.
   *
   * `logs(node, service)`: `service`'s logs on `node` to ./logs/<node>/<service>.log: every
   * instance that ran there, running or not, rotated parts included and in order; `'node'`
   * is the node's own log. With `follow`, the file appears once the history has arrived,
   * and new lines are appended until `unfollow()`.
   *
   * `logs(service)`: every instance of the service on every node, to
   * ./logs/<service>/<node>/<instance>.log; returns the directory.
   *
   * A download goes to a temp file (or directory) renamed into place once complete, so a
   * failed one leaves nothing and an earlier download stays as it was.
   */
  async logs (node: string, service: string, opts?: LogsOptions): Promise<string>
  async logs (service: string, opts?: LogsOptions): Promise<string>
  async logs (a: string, b?: string | LogsOptions, c: LogsOptions = {}): Promise<string> {
    if (typeof b !== 'string') return await this.#serviceLogs(a, b ?? {})
    const node = a
    const service = b
    const opts = c
    const path = resolve(join(opts.dir ?? 'logs', node, `${service}.log`))
    const since = sinceOf(opts.since)
    const follow = opts.follow === true
    const file = await LogDownload.create(path, node)
    let it: AsyncIterator<LogItem> | undefined
    let r: IteratorResult<LogItem>
    try {
      it = (await this.#link.stream<LogItem>('cluster.logs', { node, service, lines: opts.lines, since, follow }))[Symbol.asyncIterator]()
      // The history: until the stream ends, or with follow until the node says it caught up.
      for (r = await it.next(); r.done !== true && !('caughtUp' in r.value); r = await it.next()) await file.write(r.value)
      if (r.done === true) await file.close()
      await file.publish()
    } catch (err) {
      await it?.return?.()
      await file.discard()
      throw err
    }
    if (r.done !== true) this.#keepFollowing(it, file)
    return path
  }

  async #serviceLogs (service: string, opts: LogsOptions): Promise<string> {
    if (opts.follow === true) throw new OriginError('E_ARGS', `logs: follow needs a node: cluster.logs('<node>', '${service}', { follow: true })`)
    const since = sinceOf(opts.since)
    const nodes = (await this.nodes()).filter((n) => n.status === 'alive' || n.status === 'suspect').map((n) => n.id)
    const t0 = Date.now()
    let shown = false
    const done = await downloadService({
      dir: resolve(opts.dir ?? 'logs'),
      service,
      nodes,
      open: async (node) => await this.#link.stream<LogItem>('cluster.logs', { node, service, lines: opts.lines, since }),
      progress: (bytes, files) => {
        if (!this.#screen.interactive || Date.now() - t0 < 1000) return
        this.#screen.write(`\r\x1b[Klogs of ${service}: ${mib(bytes / 2 ** 20)} in ${files} files from ${nodes.length} nodes…`)
        shown = true
      }
    })
    if (shown) this.#screen.write('\r\x1b[K')
    for (const p of done.problems) this.#screen.note(`logs of ${service}: not from ${p}`)
    return done.path
  }

  /** Appends what `it` brings to `file` until the stream ends or `unfollow()`. */
  #keepFollowing (it: AsyncIterator<LogItem>, file: LogDownload): void {
    let stopped!: (r: IteratorResult<LogItem>) => void
    // A cancelled stream's pending next() never settles: stopping ends the wait instead.
    const stop = new Promise<IteratorResult<LogItem>>((resolve) => { stopped = resolve })
    let finished!: () => void
    const done = new Promise<void>((resolve) => { finished = resolve })
    const unfollow = async (): Promise<void> => { stopped({ done: true, value: undefined }); await it.return?.(); await done }
    this.#follows.add(unfollow)
    void (async () => {
      try {
        for (let r = await Promise.race([it.next(), stop]); r.done !== true; r = await Promise.race([it.next(), stop])) {
          if (!('caughtUp' in r.value)) await file.write(r.value)
        }
      } catch (err) {
        // Said where the operator looks: at the end of the file they are reading.
        await file.write({ instance: '', text: `# stopped following: ${err instanceof Error ? err.message : String(err)}\n` }).catch(() => {})
      } finally {
        this.#follows.delete(unfollow)
        await file.close().catch(() => {})
        finished()
      }
    })()
  }

  /** Stop following every log (the files stay as they are). */
  async unfollow (): Promise<void> {
    await Promise.all([...this.#follows].map(async (stop) => await stop()))
  }

  /** A dead node is gone for good: it becomes `left` and stops counting against the singleton majority. */
  async forget (node: string): Promise<{ forgotten: string }> {
    return await this.#link.call<{ forgotten: string }>('cluster.forget', { node })
  }

  /** Which node answered, and the round trip in ms. */
  async ping (): Promise<{ node: string, ms: number }> {
    const t0 = performance.now()
    const r = await this.#link.call<{ node: string }>('cluster.ping')
    return { node: r.node, ms: Math.round((performance.now() - t0) * 1000) / 1000 }
  }

  /** Call any operator method by name (for what has no helper yet). */
  async call<R = unknown>(method: string, payload?: unknown): Promise<R> {
    return await this.#link.call<R>(method, payload)
  }

  /** Every method with one line each, or one method's signature and an example. */
  help (name?: string): Help {
    if (name === undefined) return new Help(`${this.#describe()}\n${clusterList()}\n\ncluster.help('logs') for a method's signature and an example; .help for everything`)
    const text = methodHelp(name)
    if (text === undefined) return new Help(`no method "${name}"; there are:\n${clusterList()}`)
    return new Help(text)
  }

  close (): void { this.#link.close() }

  #describe (): string {
    return `cluster: connected to ${this.#link.node} at ${this.#link.address} as ${this.#as}`
  }

  /** Typing `cluster` shows what it offers, not its insides. */
  [inspect.custom] (): string { return this.help().text }
}

function sinceOf (since: Date | string | undefined): string | undefined {
  if (since === undefined) return undefined
  try {
    return sinceToIso(since)
  } catch (err) {
    // Not a time this side can read: the node's check says what it takes.
    if (typeof since === 'string') return since
    throw err
  }
}

export async function connectCluster (o: ConnectOptions): Promise<Cluster> {
  const id = await loadIdentity({ keys: o.keys, as: o.as })
  const link = await Link.open({ identity: { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }, address: o.address, connectTimeoutMs: o.timeoutMs, reconnect: o.reconnect })
  return new Cluster(link, o.as)
}
