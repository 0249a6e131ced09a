/**
 * A published port in HTTP mode: each request goes to a ready instance, on a kept-alive
 * connection to it (upstreams.ts), with `X-Forwarded-For` (the client's address appended), `X-Forwarded-Host` and
 * `X-Forwarded-Proto`; with no ready instance, or the chosen one at its admission limit, the
 * answer is a 503 that says so, with `Retry-After`, at once (a request is never queued).
 * Upgrades (websockets) are passed on the same way, then carried as bytes.
 *
 * The same server, without the X-Forwarded-* headers, takes the requests another node sends
 * to an instance of this one (the second hop), so admission is counted where the instance runs.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { errorMessage } from '../errors'
import { join } from './forward'

export type Opened =
  /** The instance chosen: its kept-alive agent for requests, `connect` for a socket of its own (upgrades). */
  | { instance: string, agent: http.Agent, connect: () => Promise<Socket>, release?: () => void }
  /** No connection: answered at once with this status and words (503s with Retry-After). */
  | { refuse: { status: number, body: string } }

export interface HttpForwarding {
  /** The service a request is for, to name it in answers. */
  service (req: IncomingMessage): string
  /** A connection to the instance this request goes to, or why there is none. */
  open (req: IncomingMessage): Promise<Opened>
  warn (line: string): void
  /** Add X-Forwarded-* (the node a client met first); a second hop passes the request on as it came. */
  forwarded: boolean
}

export function httpPublisher (f: HttpForwarding): http.Server {
  const server = http.createServer((req, res) => { void forwardRequest(f, req, res) })
  server.on('upgrade', (req: IncomingMessage, client: Socket, head: Buffer) => { void forwardUpgrade(f, req, client, head) })
  return server
}

function forwardedHeaders (f: HttpForwarding, req: IncomingMessage): Record<string, string | string[] | undefined> {
  if (!f.forwarded) return req.headers
  const client = req.socket.remoteAddress ?? ''
  const prior = req.headers['x-forwarded-for']
  return {
    ...req.headers,
    'x-forwarded-for': prior === undefined ? client : `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client}`,
    'x-forwarded-host': req.headers.host ?? '',
    'x-forwarded-proto': 'http'
  }
}

/** An upgrade (websockets): the request head is passed on with the forwarded headers, then bytes both ways. */
async function forwardUpgrade (f: HttpForwarding, req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
  client.on('error', () => {})
  let up: Opened
  try { up = await f.open(req) } catch (err) { up = { refuse: { status: 502, body: `${f.service(req)}: the instance could not be reached (${errorMessage(err)})` } } }
  if ('refuse' in up) {
    client.end(`HTTP/1.1 ${up.refuse.status} ${http.STATUS_CODES[up.refuse.status] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n${up.refuse.status === 503 ? 'Retry-After: 1\r\n' : ''}\r\n${up.refuse.body}\n`)
    return
  }
  const { release } = up
  let socket: Socket
  try { socket = await up.connect() } catch (err) {
    release?.()
    client.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${f.service(req)}: ${up.instance} could not be reached (${errorMessage(err)})\n`)
    return
  }
  const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1`]
  for (const [name, value] of Object.entries(forwardedHeaders(f, req))) {
    for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) lines.push(`${name}: ${v}`)
  }
  socket.write(lines.join('\r\n') + '\r\n\r\n')
  if (head.length > 0) socket.write(head)
  socket.once('close', () => release?.())
  join(client, socket)
}

/** Headers about one hop's connection (RFC 9110 7.6.1): neither passed on nor answered with. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'])

function endToEnd (headers: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> {
  const named = String(headers.connection ?? '').toLowerCase().split(',').map((h) => h.trim())
  return Object.fromEntries(Object.entries(headers).filter(([h]) => !HOP_BY_HOP.has(h) && !named.includes(h)))
}

function plain (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) { res.destroy(); return }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(body + '\n')
}

async function forwardRequest (f: HttpForwarding, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let up: Opened
  try { up = await f.open(req) } catch (err) {
    plain(res, 502, `${f.service(req)}: the instance could not be reached (${errorMessage(err)})`)
    return
  }
  if ('refuse' in up) {
    plain(res, up.refuse.status, up.refuse.body, up.refuse.status === 503 ? { 'retry-after': '1' } : {})
    return
  }
  const { instance, agent, release } = up
  res.once('close', () => release?.())
  send(f, req, res, instance, agent, endToEnd(forwardedHeaders(f, req)), true)
}

/**
 * One request on the agent's connection. A kept-alive connection the instance closed just as
 * it was reused fails with ECONNRESET before any answer: sent again once, on a new
 * connection, when nothing of the request's body was sent (GET, HEAD).
 */
function send (f: HttpForwarding, req: IncomingMessage, res: ServerResponse, instance: string, agent: http.Agent, headers: Record<string, string | string[] | undefined>, mayRetry: boolean): void {
  const out = http.request({ method: req.method, path: req.url, headers, agent }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, endToEnd(upRes.headers))
    upRes.pipe(res)
    res.once('close', () => { if (!upRes.complete) upRes.destroy() })
  })
  out.on('error', (err: Error & { code?: string }) => {
    if (mayRetry && out.reusedSocket && err.code === 'ECONNRESET' && !res.headersSent && (req.method === 'GET' || req.method === 'HEAD')) {
      send(f, req, res, instance, agent, headers, false)
      return
    }
    f.warn(`${f.service(req)}: request to ${instance} failed: ${err.message}`)
    plain(res, 502, `${f.service(req)}: ${instance} did not answer (${err.message})`)
  })
  if (req.method === 'GET' || req.method === 'HEAD') out.end()
  else req.pipe(out)
}
