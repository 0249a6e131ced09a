/**
 * The REPL's connection to the cluster: one node at a time, and with `reconnect` another
 * member it knows when that node leaves or dies, so a session outlives the node it began
 * on. Calls made while it reconnects wait for the new connection.
 *
 * @example
 *   const link = await Link.open({ identity, address: '10.0.0.4:7400', reconnect: true })
 *   link.on('reconnected', ({ node, address }) => console.log(`now on ${node} at ${address}`))
 *   await call(link, operator, 'cluster.nodes')
 */
import { EventEmitter } from 'node:events'
import { OriginError } from '../node/errors'
import { connectTo, type Connection } from '../node/transport'
import { call } from '../node/protocol/table'
import { operator } from '../node/protocol/operator'

export interface LinkOptions {
  identity: { ca: string, cert: string, key: string, cluster: string }
  /** host:port of the node to begin with. */
  address: string
  /** How long opening one connection may take. @default 3000 */
  connectTimeoutMs?: number
  /** Reconnect to another known member when the connection closes. @default false */
  reconnect?: boolean
  /** How long a reconnection keeps trying before calls fail (the next call tries again). @default 30000 */
  giveUpMs?: number
  /** How often the known members are refreshed while connected. @default 10000 */
  refreshMs?: number
}

export interface LinkEvents {
  /** The connection closed; `reason` says how. Reconnection begins. */
  lost: [{ address: string, node: string, reason: string }]
  reconnected: [{ address: string, node: string }]
  /** No member answered within `giveUpMs`; the next call tries again. */
  unreachable: [{ tried: string[] }]
}

interface MemberRow { id: string, address: string, status: string }

export class Link extends EventEmitter<LinkEvents> {
  #conn: Connection
  #node: string
  #address: string
  #reconnecting: Promise<Connection> | undefined
  #done = false
  #reconnect = false
  #refresh: NodeJS.Timeout | undefined
  /** Known members by id: where to go when the node we are on goes away. */
  readonly #members = new Map<string, MemberRow>()
  readonly #o: LinkOptions

  private constructor (o: LinkOptions, conn: Connection, node: string) {
    super()
    this.closed = new Promise((resolve) => { this.#closedForGood = resolve })
    this.#o = o
    this.#conn = conn
    this.#node = node
    this.#address = o.address
    this.#watch(conn)
  }

  static async open (o: LinkOptions): Promise<Link> {
    const conn = await serving(await connectTo(o.address, o.identity, { connectTimeoutMs: o.connectTimeoutMs }), o.address, o.connectTimeoutMs ?? 5000)
    const link = new Link(o, conn, o.address)
    if (o.reconnect === true) {
      try {
        await link.enableReconnect()
      } catch (err) {
        link.close()
        throw err
      }
    }
    return link
  }

  /** From now on, go on with another member when the connection is lost (learns who is on the other end and the members). */
  async enableReconnect (): Promise<void> {
    if (this.#reconnect) return
    this.#node = (await call(this.#conn, operator, 'cluster.ping')).node
    await this.#refreshMembers()
    this.#reconnect = true
    this.#refresh = setInterval(() => { void this.#refreshMembers() }, this.#o.refreshMs ?? 10_000)
    this.#refresh.unref()
  }

  /** host:port of the node the session is on. */
  get address (): string { return this.#address }
  /** Id of the node the session is on (its address until known). */
  get node (): string { return this.#node }
  get isOpen (): boolean { return this.#conn.isOpen }
  /** Resolves when the connection closes for good: by `close()`, lost without `reconnect`, or this operator is refused (revoked). */
  readonly closed: Promise<void>
  #closedForGood!: () => void
  /** Why the connection closed for good, when it was not `close()`. */
  closedBecause: string | undefined

  /** Members known to the session (from the member table), for reconnection and completion. */
  members (): MemberRow[] { return [...this.#members.values()] }

  /** Remember the member table (Cluster.nodes() passes what it fetched). */
  remember (rows: MemberRow[]): void {
    this.#members.clear()
    for (const r of rows) this.#members.set(r.id, { id: r.id, address: r.address, status: r.status })
  }

  /** A call on the current connection; give it to node/protocol's `call` with the operator table for a typed one. */
  call (method: string, payload?: unknown, opts?: { timeoutMs?: number }): Promise<unknown> {
    // The open connection's promise as it is: each extra async layer costs a call ~1 µs.
    if (this.#conn.isOpen) return this.#conn.call(method, payload, opts)
    return this.connection().then(async (c) => await c.call(method, payload, opts))
  }

  /** The open connection: the current one, or the one being reconnected (a new attempt if the last gave up). */
  async connection (): Promise<Connection> {
    if (this.#conn.isOpen) return this.#conn
    if (this.#done) throw new OriginError('E_CLOSED', 'the session is closed')
    if (this.#reconnecting !== undefined) return await this.#reconnecting
    if (!this.#reconnect) throw new OriginError('E_CLOSED', `the connection to ${this.#address} is closed`, { address: this.#address })
    return await this.#startReconnect()
  }

  close (): void {
    if (this.#done) return
    this.#done = true
    clearInterval(this.#refresh)
    this.#conn.close('operator done')
    this.#closedForGood()
  }

  #watch (conn: Connection): void {
    conn.once('close', (code: number, reason: string) => {
      if (this.#done || conn !== this.#conn) return
      if (!this.#reconnect) { this.closedBecause = reason; this.#closedForGood(); return }
      this.emit('lost', { address: this.#address, node: this.#node, reason: reason !== '' ? reason : code === 1006 ? 'dropped without a goodbye (the node died, or the network failed)' : `code ${String(code)}` })
      void this.#startReconnect().catch(() => {})
    })
  }

  #startReconnect (): Promise<Connection> {
    this.#reconnecting ??= this.#tryMembers().finally(() => { this.#reconnecting = undefined })
    return this.#reconnecting
  }

  async #tryMembers (): Promise<Connection> {
    const deadline = Date.now() + (this.#o.giveUpMs ?? 30_000)
    const lost = this.#address
    const tried = new Set<string>()
    for (;;) {
      // Live members first, the one just lost last (it may be back, restarted).
      const rank = (m: MemberRow): number => m.address === lost ? 3 : m.status === 'alive' ? 0 : m.status === 'suspect' ? 1 : 2
      const candidates = [...this.#members.values()].filter((m) => m.status !== 'left').sort((a, b) => rank(a) - rank(b))
      if (!candidates.some((m) => m.address === lost)) candidates.push({ id: this.#node, address: lost, status: 'dead' })
      for (const m of candidates) {
        if (this.#done) throw new OriginError('E_CLOSED', 'the session is closed')
        tried.add(m.address)
        try {
          const wait = Math.min(2000, this.#o.connectTimeoutMs ?? 2000)
          const conn = await serving(await connectTo(m.address, this.#o.identity, { connectTimeoutMs: wait }), m.address, wait)
          const { node } = await call(conn, operator, 'cluster.ping', undefined, { timeoutMs: 2000 })
          this.#conn = conn
          this.#address = m.address
          this.#node = node
          this.#watch(conn)
          this.emit('reconnected', { address: m.address, node })
          void this.#refreshMembers()
          return conn
        } catch (err) {
          // A node that refuses our certificate (revoked, expired) is no reason to try the others: we are out.
          if (err instanceof OriginError && /refused us: .*certificate/.test(err.message)) {
            this.closedBecause = err.message
            this.#done = true
            clearInterval(this.#refresh)
            this.#closedForGood()
            throw err
          }
        }
      }
      if (Date.now() > deadline) {
        this.emit('unreachable', { tried: [...tried] })
        throw new OriginError('E_UNREACHABLE', `no member of the cluster answers (tried ${[...tried].join(', ')})`, { tried: [...tried] })
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  }

  async #refreshMembers (): Promise<void> {
    if (!this.#conn.isOpen) return
    try {
      this.remember(await call(this.#conn, operator, 'cluster.nodes', undefined, { timeoutMs: 3000 }))
    } catch {
      // the next refresh, or the operator's own call, will tell
    }
  }
}

/**
 * The connection once its node answers operators. A node listens before its later layers
 * have started (membership needs the mesh first) and registers the operator methods when
 * its control layer starts, so a REPL that connects in between would get "no method":
 * ask `cluster.ping` until it answers, for at most `timeoutMs`.
 */
async function serving (conn: Connection, address: string, timeoutMs: number): Promise<Connection> {
  const until = Date.now() + timeoutMs
  for (;;) {
    try {
      await call(conn, operator, 'cluster.ping')
      return conn
    } catch (err) {
      const starting = err instanceof OriginError && err.code === 'E_UNKNOWN_METHOD'
      if (!starting || Date.now() >= until || !conn.isOpen) {
        conn.close()
        throw starting ? new OriginError('E_TIMEOUT', `the node at ${address} is still starting (it does not answer operators yet)`, { address }) : err
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}
