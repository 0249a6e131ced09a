/**
 * The few etcd v3 calls a lease needs, over etcd's JSON gateway (POST /v3/..., int64s as
 * strings, keys and values base64): no client library, no new dependency. Each call has
 * a timeout and tries the endpoints in turn, starting with the last one that answered; an
 * error names every endpoint tried and what each did.
 */
import http from 'node:http'
import https from 'node:https'

export interface EtcdClientOptions {
  /** `http://host:port` or `https://host:port`, one per etcd member. */
  endpoints: string[]
  /** Longest a call waits for one endpoint. */
  timeoutMs: number
  /** For https endpoints: PEM contents (not paths). */
  tls?: { ca?: string, cert?: string, key?: string }
}

/** The largest answer read: a lease call's answers are a few hundred bytes. */
const MAX_ANSWER_BYTES = 1 << 20

export class EtcdError extends Error {
  override readonly name = 'EtcdError'
}

export class EtcdClient {
  private preferred = 0
  private readonly inFlight = new Set<http.ClientRequest>()
  private closed = false

  constructor (private readonly o: EtcdClientOptions) {}

  /** POST `body` as JSON to `path` on the first endpoint that answers 200; its parsed answer. */
  async call (path: string, body: unknown): Promise<any> {
    if (this.closed) throw new EtcdError(`etcd client closed: POST ${path} not sent`)
    const n = this.o.endpoints.length
    const failures: string[] = []
    for (let i = 0; i < n; i++) {
      const at = (this.preferred + i) % n
      const endpoint = this.o.endpoints[at]
      try {
        const answer = await this.post(endpoint, path, JSON.stringify(body))
        this.preferred = at
        return answer
      } catch (err) {
        failures.push(`${endpoint}: ${err instanceof Error ? err.message : String(err)}`)
        if (this.closed) break
      }
    }
    throw new EtcdError(`etcd POST ${path} failed on ${failures.join('; ')}`)
  }

  /** Abandons every call in flight; later calls fail at once. */
  close (): void {
    this.closed = true
    for (const req of this.inFlight) req.destroy(new Error('client closed'))
  }

  private async post (endpoint: string, path: string, body: string): Promise<any> {
    const url = new URL(path, endpoint)
    const lib = url.protocol === 'https:' ? https : http
    return await new Promise((resolve, reject) => {
      const req = lib.request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        ...(url.protocol === 'https:' ? this.o.tls ?? {} : {})
      }, (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`))
          else chunks.push(chunk)
        })
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed: any
          try { parsed = JSON.parse(firstMessage(text)) } catch { return reject(new Error(`answered ${res.statusCode ?? '?'} with no JSON: ${text.slice(0, 120)}`)) }
          if (res.statusCode !== 200 || parsed?.error !== undefined) {
            const what = parsed?.error?.message ?? parsed?.message ?? parsed?.error ?? text.slice(0, 120)
            return reject(new Error(`answered ${res.statusCode ?? '?'}: ${typeof what === 'string' ? what : JSON.stringify(what)}`))
          }
          resolve(parsed)
        })
        res.on('error', reject)
      })
      this.inFlight.add(req)
      // The whole call, not just an idle socket: a gateway that trickles must not hold a renewal past the ttl.
      // Real time, not the node's clock: the ttl it must beat runs on etcd's clock (node/membership/lease.ts).
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${this.o.timeoutMs} ms`)), this.o.timeoutMs)
      req.on('error', reject)
      req.on('close', () => { clearTimeout(timer); this.inFlight.delete(req) })
      req.end(body)
    })
  }
}

/**
 * A streaming call (lease keepalive) answers one JSON message per line; the first is
 * the answer to the one request sent.
 */
function firstMessage (text: string): string {
  const nl = text.indexOf('\n')
  return nl === -1 ? text : text.slice(0, nl)
}

export function b64 (s: string): string {
  return Buffer.from(s, 'utf8').toString('base64')
}

export function unb64 (s: unknown): string {
  return typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : ''
}
