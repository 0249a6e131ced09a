/**
 * The `before` hook: a command run in the instance's code dir with its environment just
 * before a copy of its directory is taken, so the copy is consistent (`redis-cli SAVE`).
 * It runs in its own process group, killed whole when it runs past its time.
 */
import { spawn } from 'node:child_process'
import { OriginError } from '../errors'

export interface HookEnv {
  /** The instance's working directory. */
  cwd: string
  /** The instance's environment (PORT, ORIGIN_*, its own variables); PATH, HOME and LANG come from the node when absent. */
  env: Record<string, string>
  /** The user the instance runs as (a node running as root gives each service its own): the hook runs as it too. */
  uid?: number
  gid?: number
}

export interface Hook { command: string, args?: string[], timeoutMs?: number }

const TAIL = 2000

export async function runHook (hook: Hook, where: HookEnv, defaultTimeoutMs: number): Promise<void> {
  const timeoutMs = hook.timeoutMs ?? defaultTimeoutMs
  const what = [hook.command, ...(hook.args ?? [])].join(' ')
  const env: Record<string, string> = {}
  for (const k of ['PATH', 'HOME', 'LANG']) { const v = process.env[k]; if (v !== undefined) env[k] = v }
  Object.assign(env, where.env)
  await new Promise<void>((resolve, reject) => {
    let out = ''
    let settled = false
    const fail = (why: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const tail = out.trim().slice(-TAIL)
      reject(new OriginError('E_NOT_READY', `before hook "${what}" ${why}${tail === '' ? '' : `: ${tail}`}`, { command: what }))
    }
    const user = where.uid === undefined ? {} : { uid: where.uid, gid: where.gid ?? where.uid }
    const child = spawn(hook.command, hook.args ?? [], { cwd: where.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...user })
    const keep = (b: Buffer): void => { out = (out + b.toString('utf8')).slice(-TAIL * 2) }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    // Real time, not the node's clock: it bounds a real process, which virtual time does not slow down.
    const timer = setTimeout(() => {
      try { if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL') } catch {}
      fail(`timed out after ${timeoutMs} ms (killed)`)
    }, timeoutMs)
    child.once('error', (err) => fail(`could not start (${err.message})`))
    child.once('close', (code, signal) => {
      if (code === 0) {
        if (!settled) { settled = true; clearTimeout(timer); resolve() }
        return
      }
      fail(signal !== null ? `killed by ${signal}` : `exited with code ${code ?? '?'}`)
    })
  })
}
