/**
 * Health checks: http (2xx/3xx), tcp (connects), or a command (exits 0), each with a time
 * limit. The limit is on the host's clock (it waits on a real socket or process); when
 * checks run is the supervisor's clock (process-health.ts).
 */
import { spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import type { HealthSpec } from '../desired/types'
import { signalGroup } from './procfs'

export interface CheckResult { ok: boolean, detail: string }

/**
 * Runs the one check the spec names; `detail` says what was tried and what came back.
 * An http or tcp check without a port checks the instance's PORT (from `env`), on `host`
 * (where the instance listens, as the supervisor resolved its `bind`; default loopback).
 */
export async function runHealthCheck (h: HealthSpec & { host?: string }, timeoutMs: number, cwd: string, env: Record<string, string>): Promise<CheckResult> {
  const host = h.host ?? '127.0.0.1'
  const portOf = (port: number | undefined): number | undefined => port ?? (/^[0-9]+$/.test(env.PORT ?? '') ? Number(env.PORT) : undefined)
  const noPort = { ok: false, detail: 'no port to check: the health check names none and PORT is not in the environment' }
  if (h.http !== undefined) {
    const port = portOf(h.http.port)
    return port === undefined ? noPort : await httpCheck(host, port, h.http.path ?? '/', timeoutMs)
  }
  if (h.tcp !== undefined) {
    const port = portOf(h.tcp.port)
    return port === undefined ? noPort : await tcpCheck(host, port, timeoutMs)
  }
  if (h.command !== undefined) return await commandCheck(h.command.command, h.command.args ?? [], timeoutMs, cwd, env)
  return { ok: true, detail: 'no check' }
}

async function httpCheck (host: string, port: number, path: string, timeoutMs: number): Promise<CheckResult> {
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}${path.startsWith('/') ? path : '/' + path}`
  return await new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume()
      const code = res.statusCode ?? 0
      finish({ ok: code >= 200 && code < 400, detail: `GET ${url} -> ${code}` })
    })
    const timer = setTimeout(() => finish({ ok: false, detail: `GET ${url} -> no answer within ${timeoutMs} ms` }), timeoutMs)
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, detail: `GET ${url} -> ${err.code ?? err.message}` }))
    let settled = false
    function finish (r: CheckResult): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve(r)
    }
  })
}

async function tcpCheck (host: string, port: number, timeoutMs: number): Promise<CheckResult> {
  const where = `TCP ${host}:${port}`
  return await new Promise((resolve) => {
    const sock = net.connect({ host, port })
    const timer = setTimeout(() => finish({ ok: false, detail: `${where} -> no connection within ${timeoutMs} ms` }), timeoutMs)
    sock.once('connect', () => finish({ ok: true, detail: `${where} -> connected` }))
    sock.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, detail: `${where} -> ${err.code ?? err.message}` }))
    function finish (r: CheckResult): void {
      clearTimeout(timer)
      sock.destroy()
      resolve(r)
    }
  })
}

async function commandCheck (command: string, args: string[], timeoutMs: number, cwd: string, env: Record<string, string>): Promise<CheckResult> {
  const what = `command ${[command, ...args].join(' ')}`
  return await new Promise((resolve) => {
    let settled = false
    let tail = ''
    const finish = (r: CheckResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(r)
    }
    const child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    const keep = (chunk: Buffer): void => { tail = (tail + chunk.toString('utf8')).slice(-1024) }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    const timer = setTimeout(() => {
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL')
      finish({ ok: false, detail: `${what} -> timed out after ${timeoutMs} ms (killed)` })
    }, timeoutMs)
    child.once('error', (err) => finish({ ok: false, detail: `${what} -> ${err.message}` }))
    // Whatever the command left running in its group goes with it, so its pipes close.
    child.once('exit', () => { if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL') })
    child.once('close', (code, signal) => {
      const last = tail.trim().split('\n').pop()?.trim() ?? ''
      const end = signal !== null ? `killed by ${signal}` : `exited with code ${code ?? '?'}`
      finish({ ok: code === 0, detail: `${what} -> ${end}${last !== '' && code !== 0 ? `: ${last}` : ''}` })
    })
  })
}
