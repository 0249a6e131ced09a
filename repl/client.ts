/**
 * The `cluster` object the REPL puts in scope: a connection to one node (another member
 * when that one goes away, in a session), with the operator's certificate, and one method
 * per thing an operator asks. The methods are listed, with an example each, in catalog.ts.
 *
 * @example
 *   const cluster = await connectCluster({ keys: './keys', as: 'alice', address: '10.0.0.4:7400' })
 *   await cluster.nodes()
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { inspect } from 'node:util'
import { join, resolve } from 'node:path'
import { loadIdentity } from '../node/keys/files'
import type { LogItem } from '../node/control/logs'
import { OriginError } from '../node/errors'
import { Help, clusterList, methodHelp } from './catalog'
import { LogDownload, downloadService } from './download'
import { Link } from './link'
import { call, stream } from '../node/protocol/table'
import { operator } from '../node/protocol/operator'
import { HubSet, NodeTable, SpecReport, SyncReport, ServicesReport } from './render'
import { plainScreen, type Screen } from './screen'
import { sinceToIso } from './since'
import { StatsReport, mib, watchStats } from './stats'
import type { EventsView } from '../node/control/events'
import type { JournalEvent } from '../node/journal'
import type { EachResult, RestartResult } from '../node/control/actions'
import { EventList, LiveLines, SaveReport, StateReport, eventLine } from './journal'

export interface EventsOptions {
  /** Only entries since then: '10m', '2h', '1d', a Date, a date or an ISO string. @default '1h' */
  since?: Date | string
  /** Only this node's journal. */
  node?: string
  /** Only entries about this service. */
  service?: string
  /** Keep printing new entries until Ctrl-C. */
  follow?: boolean
}

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

export interface EvalOptions {
  /** The evaluation's time limit on the node, in ms (10 to 10000). @default 1000 */
  timeoutMs?: number
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
  /** The live lines' poller, while the session shows them. */
  #live?: { timer: NodeJS.Timeout, quiet: boolean, from: number }

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
  /**
   * Where watch frames, progress and notes go (the session's terminal); with `live`, spec
   * applied/rejected and rollout steps are printed there as they happen, until `quiet()`.
   */
  attach (screen: Screen, o: { live?: boolean } = {}): void {
    this.#screen = screen
    if (o.live === true) this.#startLive()
  }

  /** The member table as the connected node sees it. */
  async nodes (): Promise<NodeTable> {
    const rows = await call(this.#link, operator, 'cluster.nodes')
    this.#link.remember(rows)
    return NodeTable.fromRows(rows)
  }

  /** The hub set, strongest first, and the policy that chose it. */
  async hubs (): Promise<HubSet> {
    return new HubSet(await call(this.#link, operator, 'cluster.hubs'))
  }

  /** The spec: the commit applied, which version each node runs, the last rejected commit and why. */
  async spec (): Promise<SpecReport> {
    return new SpecReport(await call(this.#link, operator, 'cluster.spec'))
  }

  /** Fetch the spec repo now instead of waiting for the next poll; what each hub did. */
  async sync (): Promise<SyncReport> {
    return SyncReport.fromResults(await call(this.#link, operator, 'cluster.sync', undefined, { timeoutMs: 60_000 }))
  }

  /** Every service: its instances (node, status and why, restarts, uptime), what could not be placed, and the phase. */
  async services (): Promise<ServicesReport> {
    return new ServicesReport(await call(this.#link, operator, 'cluster.services'))
  }

  /** Where one service runs, and the phase. */
  async where (service: string): Promise<ServicesReport> {
    return new ServicesReport(await call(this.#link, operator, 'cluster.where', { service }))
  }

  /** The phase and why: `forming: 2 of 3 nodes`, `running: ...`, `degraded: ...`. */
  async phase (): Promise<string> {
    return (await call(this.#link, operator, 'cluster.services')).phase?.reason ?? 'no spec applied yet'
  }

  /**
   * Every node's CPU, memory, load, free disk, event-loop delay and mesh connections, and
   * each instance's CPU, memory, restarts, uptime and port; unreachable nodes say why.
   * With `{ watch: ms }`, redrawn in place until Ctrl-C (resolves with the last).
   */
  async stats (opts?: { watch?: undefined }): Promise<StatsReport>
  async stats (opts: StatsOptions): Promise<StatsReport | undefined>
  async stats (opts: StatsOptions = {}): Promise<StatsReport | undefined> {
    const once = async (): Promise<StatsReport> => new StatsReport(await call(this.#link, operator, 'cluster.stats', undefined, { timeoutMs: 15_000 }))
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
      it = (stream(await this.#link.connection(), operator, 'cluster.logs', { node, service, lines: opts.lines, since, follow }))[Symbol.asyncIterator]()
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
      open: async (node) => stream(await this.#link.connection(), operator, 'cluster.logs', { node, service, lines: opts.lines, since }),
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

  /**
   * Every node's journal merged in time order: members, hubs, spec applied/rejected,
   * phase, instances with their reasons, rollout steps, operator actions. With `follow`,
   * new entries print as they come until Ctrl-C.
   */
  async events (opts: EventsOptions = {}): Promise<EventList | undefined> {
    const since = Date.parse(sinceOf(opts.since ?? '1h')!)
    const ask = async (from: number): Promise<EventsView> =>
      await call(this.#link, operator, 'cluster.events', { since: from, ...(opts.node === undefined ? {} : { node: opts.node }), ...(opts.service === undefined ? {} : { service: opts.service }) }, { timeoutMs: 30_000 })
    const first = EventList.fromView(await ask(since))
    if (opts.follow !== true) return first
    return await this.#followEvents(first, ask)
  }

  async #followEvents (first: EventList, ask: (from: number) => Promise<EventsView>): Promise<undefined> {
    const shown = new Set<string>()
    const show = (es: JournalEvent[]): void => {
      for (const e of es) {
        const k = `${e.node}\0${e.at}\0${e.seq}`
        if (shown.has(k)) continue
        shown.add(k)
        this.#screen.write((this.#screen.interactive ? eventLine(e) : JSON.stringify(e)) + '\n')
      }
    }
    show(first)
    let from = first.at(-1)?.at ?? Date.now() - 1000
    let stop = false
    const interrupted = this.#screen.interrupted().then(() => { stop = true })
    if (this.#screen.interactive) this.#screen.write('(following; Ctrl-C to stop)\n')
    while (!stop) {
      await Promise.race([new Promise((resolve) => setTimeout(resolve, 1000)), interrupted])
      if (stop) break
      try {
        const v = await ask(from)
        show(v.events)
        from = v.events.at(-1)?.at ?? from
      } catch { /* reconnecting: the next tick asks again */ }
    }
    return undefined
  }

  /**
   * The whole cluster as text a person reads without origin (members and their
   * characteristics, hubs, the spec and each node's, services and instances with addresses
   * and reasons, the phase, recent events); the JSON is `.state`. With `{ at }`, the
   * cluster at that moment, replayed from the journals.
   */
  async state (opts: { at?: Date | string | number } = {}): Promise<StateReport> {
    if (opts.at !== undefined) {
      const at = typeof opts.at === 'number' ? opts.at : Date.parse(sinceOf(opts.at)!)
      const v = await call(this.#link, operator, 'cluster.replay', { at }, { timeoutMs: 30_000 })
      return new StateReport({ kind: 'at', at: new Date(at).toISOString(), answeredBy: v.answeredBy, replayed: v.replayed, events: v.recent, unreachable: v.unreachable })
    }
    const at = Date.now()
    const [nodes, hubs, spec, services, events] = await Promise.all([
      call(this.#link, operator, 'cluster.nodes'),
      call(this.#link, operator, 'cluster.hubs'),
      call(this.#link, operator, 'cluster.spec'),
      call(this.#link, operator, 'cluster.services'),
      call(this.#link, operator, 'cluster.events', { since: at - 3_600_000, limit: 40 }, { timeoutMs: 30_000 }).catch(() => ({ events: [] as JournalEvent[] }))
    ])
    return new StateReport({ kind: 'now', at: new Date(at).toISOString(), answeredBy: services.answeredBy, nodes, hubs, spec, services, events: events.events })
  }

  /**
   * A support bundle in `dir`: state.txt (the text of state()), state.json, every node's
   * journal (journal/<node>.jsonl, events.txt merged), every node's log and every
   * instance's log (logs/). Shows progress; the line at the end says what is where.
   */
  async save (dir: string): Promise<SaveReport> {
    const root = resolve(dir)
    await mkdir(join(root, 'journal'), { recursive: true })
    const files: string[] = []
    const problems: string[] = []
    const state = await this.state()
    const s = state.state as Extract<typeof state.state, { kind: 'now' }>
    const nodes = s.nodes.filter((n) => n.status === 'alive' || n.status === 'suspect').map((n) => n.id)
    for (const n of s.nodes) if (n.status === 'dead') problems.push(`${n.id}: dead; its journal and logs stay on its disk (${n.address})`)
    const services = s.services.services.map((x) => x.name)
    const total = 3 + nodes.length * 2 + services.length
    let done = 0
    const step = (what: string): void => {
      done++
      if (!this.#screen.interactive) return
      const width = 30
      const full = Math.round((done / total) * width)
      this.#screen.write(`\r\x1b[K[${'#'.repeat(full)}${' '.repeat(width - full)}] ${done}/${total} ${what}`)
    }
    const put = async (rel: string, text: string): Promise<void> => { await writeFile(join(root, rel), text); files.push(rel) }
    await put('state.txt', state.toString() + '\n'); step('state.txt')
    await put('state.json', JSON.stringify(state.state, null, 2) + '\n'); step('state.json')
    const all: JournalEvent[] = []
    for (const node of nodes) {
      try {
        const v = await call(this.#link, operator, 'cluster.events', { node }, { timeoutMs: 60_000 })
        all.push(...v.events)
        await put(`journal/${node}.jsonl`, v.events.map((e) => JSON.stringify(e) + '\n').join(''))
      } catch (err) { problems.push(`journal of ${node}: ${err instanceof Error ? err.message : String(err)}`) }
      step(`journal of ${node}`)
    }
    all.sort((a, b) => a.at - b.at || (a.node < b.node ? -1 : a.node > b.node ? 1 : a.seq - b.seq))
    await put('journal/events.txt', all.map((e) => eventLine(e) + '\n').join('')); step('events.txt')
    const logs = join(root, 'logs')
    for (const node of nodes) {
      try { await this.logs(node, 'node', { dir: logs }); files.push(`logs/${node}/node.log`) } catch (err) { problems.push(`node log of ${node}: ${err instanceof Error ? err.message : String(err)}`) }
      step(`node log of ${node}`)
    }
    const screen = this.#screen
    this.#screen = { ...screen, interactive: false, note: (line) => problems.push(line) }
    try {
      for (const svc of services) {
        try { await this.logs(svc, { dir: logs }); files.push(`logs/${svc}/`) } catch (err) { problems.push(`logs of ${svc}: ${err instanceof Error ? err.message : String(err)}`) }
        step(`logs of ${svc}`)
      }
    } finally { this.#screen = screen }
    const report = new SaveReport(root, files, problems)
    if (this.#screen.interactive) this.#screen.write('\r\x1b[K')
    else this.#screen.note(report.toString()) // with -e the result is JSON: the line goes to stderr
    return report
  }

  /** Polls every node's journal for the live lines (one fan-out per tick). */
  #startLive (everyMs = 2000): void {
    if (this.#live !== undefined) return
    const lines = new LiveLines()
    let busy = false
    const tick = async (): Promise<void> => {
      // While an evaluation, a watch or an editor holds the terminal, the lines wait for the prompt.
      if (busy || this.#live?.quiet !== false || !this.#link.isOpen || this.#screen.busy?.() === true) return
      busy = true
      try {
        const live = this.#live
        const v = await call(this.#link, operator, 'cluster.events', { since: live.from, kinds: ['spec-applied', 'spec-rejected', 'rollout', 'instance'] }, { timeoutMs: 10_000 })
        if (v.events.length > 0) live.from = Math.max(live.from, v.events.at(-1)!.at)
        if (!live.quiet) for (const l of lines.lines(v.events)) this.#screen.note(l)
      } catch { /* reconnecting: the next tick asks again */ } finally { busy = false }
    }
    const timer = setInterval(() => { void tick() }, everyMs)
    timer.unref()
    this.#live = { timer, quiet: false, from: Date.now() }
  }

  /** Switch the live lines (spec applied/rejected, rollout steps) off, or on again. */
  quiet (on?: boolean): string {
    if (this.#live === undefined) return 'no live lines here (only the interactive REPL prints them)'
    this.#live.quiet = on ?? !this.#live.quiet
    this.#live.from = Date.now() // what happened while quiet stays in cluster.events()
    return this.#live.quiet ? 'quiet: spec and rollout lines are no longer printed (cluster.quiet() again to see them)' : 'spec applied/rejected and rollout steps are printed as they happen'
  }

  /** A dead node is gone for good: it becomes `left` and stops counting against the singleton majority. */
  async forget (node: string): Promise<{ forgotten: string }> {
    return await call(this.#link, operator, 'cluster.forget', { node })
  }

  /**
   * One node, to evaluate code there: `await cluster.on('node-2').eval('node.instances.length')`.
   * The code is TypeScript, sees a read-only `node` (id, members, spec, instances, process,
   * journal) and nothing else, and is stopped after its time limit (`{ timeoutMs }`, 1 s by default).
   */
  on (node: string): { eval: (code: string, opts?: EvalOptions) => Promise<unknown> } {
    return {
      eval: async (code: string, opts: EvalOptions = {}) =>
        (await call(this.#link, operator, 'cluster.eval', { node, code, ...opts }, { timeoutMs: 15_000 + (opts.timeoutMs ?? 0) })).value
    }
  }

  /** Evaluates `code` on every node at once: each node's value or error (like Erlang's erpc:multicall). */
  async each (code: string, opts: EvalOptions = {}): Promise<EachResult[]> {
    return await call(this.#link, operator, 'cluster.each', { code, ...opts }, { timeoutMs: 15_000 + (opts.timeoutMs ?? 0) })
  }

  /** Restarts a service's instances (`'web'`) or one instance (`'web-1'`) in place, one at a time, each waiting until the previous is ready again. */
  async restart (target: string): Promise<RestartResult> {
    return await call(this.#link, operator, 'cluster.restart', { target }, { timeoutMs: 30 * 60_000 })
  }

  /** Moves every instance off `node` and keeps it empty (across its restarts) until `undrain(node)`. */
  async drain (node: string): Promise<{ node: string, drained: boolean }> {
    return await call(this.#link, operator, 'cluster.drain', { node, drained: true })
  }

  /** `node` hosts instances again. */
  async undrain (node: string): Promise<{ node: string, drained: boolean }> {
    return await call(this.#link, operator, 'cluster.drain', { node, drained: false })
  }

  /** Which node answered, and the round trip in ms. */
  async ping (): Promise<{ node: string, ms: number }> {
    const t0 = performance.now()
    const r = await call(this.#link, operator, 'cluster.ping')
    return { node: r.node, ms: Math.round((performance.now() - t0) * 1000) / 1000 }
  }

  /** Call any operator method by name (for what has no helper yet): what comes back is not checked here, so it is unknown. */
  // Not async: the connection's own promise, without a second one wrapped around it per call.
  call (method: string, payload?: unknown): Promise<unknown> {
    return this.#link.call(method, payload)
  }

  /** Every method with one line each, or one method's signature and an example. */
  help (name?: string): Help {
    if (name === undefined) return new Help(`${this.#describe()}\n${clusterList()}\n\ncluster.help('logs') for a method's signature and an example; .help for everything`)
    const text = methodHelp(name)
    if (text === undefined) return new Help(`no method "${name}"; there are:\n${clusterList()}`)
    return new Help(text)
  }

  close (): void {
    if (this.#live !== undefined) clearInterval(this.#live.timer)
    this.#link.close()
  }

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
