/**
 * A published port in HTTP mode: each request goes to a ready instance on a connection of
 * its own, with `X-Forwarded-For` (the client's address appended), `X-Forwarded-Host` and
 * `X-Forwarded-Proto`; with no ready instance, or the chosen one at its admission limit, the
 * answer is a 503 that says so, with `Retry-After`, at once (a request is never queued).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { errorMessage } from '../errors'

export type Opened =
  | { instance: string, socket: Socket, release?: () => void }
  /** No connection: answered at once with this status and words (503s with Retry-After). */
  | { refuse: { status: number, body: string } }

export interface HttpForwarding {
  service: string
  /** A connection to the instance this request goes to, or why there is none. */
  open (req: IncomingMessage): Promise<Opened>
  warn (line: string): void
}

export function httpPublisher (f: HttpForwarding): http.Server {
  return http.createServer((req, res) => { void forwardRequest(f, req, res) })
}

function plain (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) { res.destroy(); return }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(body + '\n')
}

async function forwardRequest (f: HttpForwarding, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let up: Opened
  try { up = await f.open(req) } catch (err) {
    plain(res, 502, `${f.service}: the instance could not be reached (${errorMessage(err)})`)
    return
  }
  if ('refuse' in up) {
    plain(res, up.refuse.status, up.refuse.body, up.refuse.status === 503 ? { 'retry-after': '1' } : {})
    return
  }
  const { instance, release } = up
  res.once('close', () => release?.())
  const socket = up.socket
  const client = req.socket.remoteAddress ?? ''
  const prior = req.headers['x-forwarded-for']
  const headers = {
    ...req.headers,
    'x-forwarded-for': prior === undefined ? client : `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client}`,
    'x-forwarded-host': req.headers.host ?? '',
    'x-forwarded-proto': 'http'
  }
  const out = http.request({ method: req.method, path: req.url, headers, createConnection: () => socket }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.headers)
    upRes.pipe(res)
  })
  out.on('error', (err) => { f.warn(`${f.service}: request to ${instance} failed: ${err.message}`); plain(res, 502, `${f.service}: ${instance} did not answer (${err.message})`) })
  res.on('close', () => socket.destroy())
  req.pipe(out)
}
