/**
 * isomorphic-git's HTTP client with time limits. Its own node client waits for ever on a
 * server that takes the connection and never answers, which holds a hub's spec fetch or a
 * supervisor's code fetch (and so the node's whole reconcile) until the socket dies. Here a
 * request fails when the server is silent for `idleMs`: no answer, or no byte of the body.
 * Redirects are followed (a moved repository, http to https), at most five.
 */
import http from 'node:http'
import https from 'node:https'
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git'
import { OriginError } from '../errors'

/** Silence from a git server before a request fails. Longer suits very slow servers; shorter frees a stuck fetch sooner. */
export const GIT_IDLE_MS = 30_000

const MAX_REDIRECTS = 5

export function gitHttp (idleMs = GIT_IDLE_MS): HttpClient {
  return {
    async request (req: GitHttpRequest): Promise<GitHttpResponse> {
      const chunks: Buffer[] = []
      if (req.body !== undefined) for await (const c of req.body) chunks.push(Buffer.from(c))
      return await send(new URL(req.url), req.method ?? 'GET', req.headers ?? {}, Buffer.concat(chunks), idleMs, 0)
    }
  }
}

async function send (url: URL, method: string, headers: Record<string, string>, body: Buffer, idleMs: number, redirects: number): Promise<GitHttpResponse> {
  const silent = (what: string): OriginError => new OriginError('E_TIMEOUT', `${url.host} ${what} for ${idleMs / 1000} s`, { url: url.href })
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, { method, headers, timeout: idleMs }, resolve)
    request.on('timeout', () => request.destroy(silent('did not answer')))
    request.on('error', reject)
    request.end(body.length > 0 ? body : undefined)
  })
  const status = res.statusCode ?? 0
  const location = res.headers.location
  if ([301, 302, 303, 307, 308].includes(status) && location !== undefined) {
    res.resume()
    if (redirects >= MAX_REDIRECTS) throw new OriginError('E_UNREACHABLE', `${url.href}: more than ${MAX_REDIRECTS} redirects`, { url: url.href })
    // 307 and 308 keep the method and body; the others turn into a GET.
    const keep = status === 307 || status === 308
    return await send(new URL(location, url), keep ? method : 'GET', headers, keep ? body : Buffer.alloc(0), idleMs, redirects + 1)
  }
  res.setTimeout(idleMs, () => res.destroy(silent('sent nothing more')))
  const flat: Record<string, string> = {}
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v
  return { url: url.href, method, statusCode: status, statusMessage: res.statusMessage ?? '', headers: flat, body: res[Symbol.asyncIterator]() as AsyncIterableIterator<Uint8Array> }
}
