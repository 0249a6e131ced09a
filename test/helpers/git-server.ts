/**
 * A real git server for tests: git's own smart-HTTP server (`git http-backend`, a CGI
 * program) behind a tiny Node HTTP bridge on loopback, serving one bare repository
 * `spec.git`. Every request is recorded with its User-Agent, so a test can assert which
 * clients contacted the server (nodes send `origin-node/<id>`, the git CLI `git/2.x`).
 *
 * @example
 * const gs = await startGitServer()
 * const oid = await gs.seed({ 'cluster.yaml': 'name: demo\n' })
 * // ... start nodes with gs.url, then:
 * t.is(gs.requestsBy((r) => r.userAgent.startsWith('origin-node/')), 0)
 * await gs.stop()
 */
import { execFile, spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface GitServerInit {
  /** Address to listen on. @default '127.0.0.1' */
  host?: string
  /** If set, every request must carry it (HTTP Basic password with any user, or Bearer), else 401. */
  token?: string
}

export interface GitRequest {
  /** Date.now() when the request arrived. */
  at: number
  method: string
  /** Path and query, as sent. */
  path: string
  /** '' when the client sent none (isomorphic-git sends none by default). */
  userAgent: string
  remote: string
  /** 0 until the response is done (or if the client left before its head was sent). */
  status: number
}

export interface Workdir {
  dir: string
  write: (path: string, content: string) => Promise<void>
  remove: (path: string) => Promise<void>
  /** `git add -A` and commit; returns the new commit id. */
  commit: (message: string, opts?: { sign?: { keyFile: string } }) => Promise<string>
  /** `git push origin HEAD:main`. */
  push: () => Promise<void>
  head: () => Promise<string>
  /** Runs any git command in the workdir; returns its stdout. */
  run: (args: string[]) => Promise<string>
}

export interface GitServer {
  /** The repository URL, e.g. http://127.0.0.1:41234/spec.git (no credentials). */
  url: string
  /** The bare repository's path. */
  dir: string
  /** Every request since start or the last resetCount(), oldest first. */
  readonly requests: readonly GitRequest[]
  /** Counts requests matching the predicate, or whose User-Agent contains the string. */
  requestsBy: (match: string | ((r: GitRequest) => boolean)) => number
  resetCount: () => void
  /** A fresh clone (real git CLI) on branch main, with a committer identity. */
  workdir: () => Promise<Workdir>
  /** Writes files in a fresh workdir, commits, pushes; returns the commit id. */
  seed: (files: Record<string, string>, message?: string) => Promise<string>
  /** Closes the server and removes every temp dir. Idempotent. */
  stop: () => Promise<void>
}

/** The environment of every git child: isolated from the host's git config and GIT_* variables. */
function gitEnv (): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0'
  }
}

async function git (cwd: string, args: string[]): Promise<string> {
  try {
    return (await run('git', args, { cwd, env: gitEnv(), maxBuffer: 64 << 20 })).stdout
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`git ${args.join(' ')} failed in ${cwd}: ${e.stderr?.trim() || e.message}`)
  }
}

/** The authenticated user, null if the token is required and missing or wrong. */
function authenticate (req: http.IncomingMessage, token: string | undefined): string | undefined | null {
  if (token === undefined) return undefined
  const h = req.headers.authorization ?? ''
  if (h === `Bearer ${token}`) return 'bearer'
  if (!h.startsWith('Basic ')) return null
  const decoded = Buffer.from(h.slice(6), 'base64').toString()
  const colon = decoded.indexOf(':')
  return colon >= 0 && decoded.slice(colon + 1) === token ? decoded.slice(0, colon) || 'basic' : null
}

/** Runs one request through `git http-backend`, streaming its CGI response back. */
function serveCgi (root: string, req: http.IncomingMessage, res: http.ServerResponse, user: string | undefined): void {
  const url = new URL(req.url ?? '/', 'http://x')
  const h = req.headers
  const env: NodeJS.ProcessEnv = {
    ...gitEnv(),
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    PATH_INFO: decodeURIComponent(url.pathname),
    REQUEST_METHOD: req.method ?? 'GET',
    QUERY_STRING: url.search.slice(1),
    CONTENT_TYPE: h['content-type'] ?? '',
    REMOTE_ADDR: req.socket.remoteAddress ?? ''
  }
  // Without CONTENT_LENGTH (chunked request) http-backend reads its stdin to EOF.
  if (h['content-length'] !== undefined) env.CONTENT_LENGTH = h['content-length']
  if (user !== undefined) env.REMOTE_USER = user
  if (h['content-encoding'] !== undefined) env.HTTP_CONTENT_ENCODING = h['content-encoding']
  if (h['git-protocol'] !== undefined) env.HTTP_GIT_PROTOCOL = String(h['git-protocol'])

  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  let head: Buffer | null = Buffer.alloc(0)
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  child.stdin.on('error', () => {}) // http-backend may answer (e.g. 403) without reading the body
  child.on('error', (err) => { if (!res.headersSent) res.writeHead(500).end(err.message) })
  res.on('close', () => { if (!res.writableFinished) child.kill() })
  req.pipe(child.stdin)

  child.stdout.on('data', (chunk: Buffer) => {
    if (head === null) {
      if (!res.write(chunk)) { child.stdout.pause(); res.once('drain', () => child.stdout.resume()) }
      return
    }
    head = Buffer.concat([head, chunk])
    const text = head.toString('latin1')
    const m = /\r?\n\r?\n/.exec(text)
    if (m === null) return
    let status = 200
    const headers: Record<string, string> = {}
    for (const line of text.slice(0, m.index).split(/\r?\n/)) {
      const i = line.indexOf(':')
      if (i < 0) continue
      const name = line.slice(0, i).trim()
      const value = line.slice(i + 1).trim()
      if (name.toLowerCase() === 'status') status = parseInt(value, 10)
      else headers[name] = value
    }
    const rest = head.subarray(m.index + m[0].length)
    head = null
    res.writeHead(status, headers)
    if (rest.length > 0) res.write(rest)
  })
  child.stdout.on('end', () => {
    if (head !== null && !res.headersSent) res.writeHead(502).write(`no CGI headers from git http-backend: ${stderr}`)
    res.end()
  })
}

export async function startGitServer (opts: GitServerInit = {}): Promise<GitServer> {
  const host = opts.host ?? '127.0.0.1'
  const root = await mkdtemp(join(os.tmpdir(), 'origin-git-'))
  const repo = join(root, 'spec.git')
  await git(root, ['init', '--quiet', '--bare', '--initial-branch=main', repo])
  await git(repo, ['config', 'http.receivepack', 'true'])
  await git(repo, ['symbolic-ref', 'HEAD', 'refs/heads/main'])

  const requests: GitRequest[] = []
  const server = http.createServer((req, res) => {
    const entry: GitRequest = {
      at: Date.now(),
      method: req.method ?? '',
      path: req.url ?? '',
      userAgent: req.headers['user-agent'] ?? '',
      remote: req.socket.remoteAddress ?? '',
      status: 0
    }
    requests.push(entry)
    res.on('close', () => { entry.status = res.headersSent ? res.statusCode : 0 })
    const user = authenticate(req, opts.token)
    if (user === null) {
      req.resume()
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="origin-test"' }).end('authentication required\n')
      return
    }
    serveCgi(root, req, res, user)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => { server.off('error', reject); resolve() })
  })
  const port = (server.address() as AddressInfo).port
  const hostPart = host.includes(':') ? `[${host}]` : host
  const url = `http://${hostPart}:${port}/spec.git`
  const authUrl = opts.token === undefined
    ? url
    : `http://git:${encodeURIComponent(opts.token)}@${hostPart}:${port}/spec.git`

  let workdirs = 0
  let stopped: Promise<void> | undefined

  async function workdir (): Promise<Workdir> {
    const dir = join(root, `work-${++workdirs}`)
    await git(root, ['clone', '--quiet', authUrl, dir])
    await git(dir, ['symbolic-ref', 'HEAD', 'refs/heads/main']) // an empty clone may pick another name
    await git(dir, ['config', 'user.name', 'Origin Test'])
    await git(dir, ['config', 'user.email', 'test@origin.invalid'])
    return {
      dir,
      write: async (path, content) => {
        await mkdir(dirname(join(dir, path)), { recursive: true })
        await writeFile(join(dir, path), content)
      },
      remove: async (path) => { await rm(join(dir, path), { recursive: true, force: true }) },
      commit: async (message, o = {}) => {
        await git(dir, ['add', '-A'])
        const sign = o.sign === undefined
          ? ['-c', 'commit.gpgsign=false', 'commit']
          : ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${o.sign.keyFile}`, 'commit', '-S']
        await git(dir, [...sign, '--quiet', '-m', message])
        return (await git(dir, ['rev-parse', 'HEAD'])).trim()
      },
      push: async () => { await git(dir, ['push', '--quiet', 'origin', 'HEAD:main']) },
      head: async () => (await git(dir, ['rev-parse', 'HEAD'])).trim(),
      run: async (args) => await git(dir, args)
    }
  }

  return {
    url,
    dir: repo,
    requests,
    requestsBy: (match) => requests.filter(typeof match === 'string' ? (r) => r.userAgent.includes(match) : match).length,
    resetCount: () => { requests.length = 0 },
    workdir,
    seed: async (files, message = 'seed') => {
      const w = await workdir()
      for (const [path, content] of Object.entries(files)) await w.write(path, content)
      const oid = await w.commit(message)
      await w.push()
      return oid
    },
    stop: async () => {
      stopped ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
        await rm(root, { recursive: true, force: true })
      })()
      await stopped
    }
  }
}
