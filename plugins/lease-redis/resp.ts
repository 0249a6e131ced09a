/**
 * A small Redis client: one TCP connection, commands as RESP arrays of bulk strings,
 * replies parsed in order. Enough for the lease's few commands (EVAL, GET, AUTH), so the
 * plugin needs no package. A call that times out closes the connection (a late reply
 * would otherwise answer the next command); the next call opens a new one.
 */
import net from 'node:net'

export type Reply = string | number | null | Reply[]

/** An error reply from the server (`-ERR ...`, `-NOAUTH ...`): it answered, and refused. */
export class RedisReplyError extends Error {}

export interface RespClientInit {
  host: string
  port: number
  /** Sent with AUTH when a connection opens. @default none */
  password?: string
  /** Longest one call waits, connecting included. */
  timeoutMs: number
}

interface Pending { resolve: (r: Reply) => void, reject: (e: Error) => void, timer: NodeJS.Timeout, auth: boolean }

export class RespClient {
  private socket: net.Socket | undefined
  private buffer: Buffer = Buffer.alloc(0)
  private readonly pending: Pending[] = []
  private closed = false

  constructor (private readonly init: RespClientInit) {}

  /** `host:port`, for what a person reads. */
  get endpoint (): string { return `${this.init.host}:${this.init.port}` }

  async call (...args: Array<string | number>): Promise<Reply> {
    if (this.closed) throw new Error(`redis ${this.endpoint}: the client is closed`)
    const socket = this.socket ?? this.open()
    return await this.send(socket, args)
  }

  close (): void {
    this.closed = true
    this.drop(new Error(`redis ${this.endpoint}: the client is closed`))
  }

  private open (): net.Socket {
    const socket = net.connect({ host: this.init.host, port: this.init.port })
    socket.setNoDelay(true)
    this.socket = socket
    this.buffer = Buffer.alloc(0)
    socket.on('data', (chunk) => this.received(chunk))
    socket.on('error', (err) => this.drop(new Error(`redis ${this.endpoint}: ${err.message}`), socket))
    socket.on('close', () => this.drop(new Error(`redis ${this.endpoint}: the connection closed`), socket))
    // Queued before any command on this connection, so it is answered first; a refusal fails the calls behind it (received()).
    if (this.init.password !== undefined) this.send(socket, ['AUTH', this.init.password], true).catch(() => {})
    return socket
  }

  private async send (socket: net.Socket, args: Array<string | number>, auth = false): Promise<Reply> {
    return await new Promise((resolve, reject) => {
      // Real time, not the node's clock: the ttl it must beat runs on Redis's clock (node/membership/lease.ts).
      const timer = setTimeout(() => this.drop(new Error(`redis ${this.endpoint}: no answer within ${this.init.timeoutMs} ms`), socket), this.init.timeoutMs)
      this.pending.push({ resolve, reject, timer, auth })
      socket.write(encode(args))
    })
  }

  private received (chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    for (;;) {
      let parsed
      try {
        parsed = parse(this.buffer, 0)
      } catch (err) {
        this.drop(new Error(`redis ${this.endpoint}: ${(err as Error).message}`))
        return
      }
      if (parsed === undefined) return
      this.buffer = this.buffer.subarray(parsed.end)
      const p = this.pending.shift()
      if (p === undefined) continue
      clearTimeout(p.timer)
      if (!(parsed.value instanceof RedisReplyError)) {
        p.resolve(parsed.value)
        continue
      }
      const refused = new RedisReplyError(`redis ${this.endpoint}: ${p.auth ? 'AUTH refused: ' : ''}${parsed.value.message}`)
      p.reject(refused)
      if (p.auth) return this.drop(refused)
    }
  }

  /** Fails every call in flight and forgets the connection (when `socket` is still the current one). */
  private drop (err: Error, socket = this.socket): void {
    if (socket !== this.socket || socket === undefined) return
    this.socket = undefined
    socket.destroy()
    for (const p of this.pending.splice(0)) { clearTimeout(p.timer); p.reject(err) }
  }
}

export function encode (args: Array<string | number>): Buffer {
  const parts = [`*${args.length}\r\n`]
  for (const a of args) {
    const s = String(a)
    parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`)
  }
  return Buffer.from(parts.join(''))
}

type Parsed = { value: Reply | RedisReplyError, end: number } | undefined

/** One reply starting at `at`, or undefined when `buf` does not hold all of it yet. */
export function parse (buf: Buffer, at: number): Parsed {
  const eol = buf.indexOf('\r\n', at)
  if (eol < 0) return undefined
  const line = buf.toString('utf8', at + 1, eol)
  const next = eol + 2
  switch (String.fromCharCode(buf[at])) {
    case '+': return { value: line, end: next }
    case '-': return { value: new RedisReplyError(line), end: next }
    case ':': return { value: Number(line), end: next }
    case '$': {
      const n = Number(line)
      if (n < 0) return { value: null, end: next }
      if (buf.length < next + n + 2) return undefined
      return { value: buf.toString('utf8', next, next + n), end: next + n + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, end: next }
      const items: Reply[] = []
      let end = next
      for (let i = 0; i < n; i++) {
        const item = parse(buf, end)
        if (item === undefined) return undefined
        // An error inside an array (EXEC) is kept as its text: the lease never sends one.
        items.push(item.value instanceof RedisReplyError ? item.value.message : item.value)
        end = item.end
      }
      return { value: items, end }
    }
    default: throw new Error(`unexpected reply byte ${JSON.stringify(String.fromCharCode(buf[at]))}`)
  }
}
