/**
 * Real servers a test runs beside its nodes (etcd, redis-server): each in a temp dir of its
 * own on a free loopback port, killed and its dir removed by the cleanup the caller
 * registers it with (a test's teardown, or a suite's after.always), and killed if this
 * process exits first.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { waitFor } from './wait'

/** Where a server's cleanup goes: `t.teardown`, or a list a suite empties in after.always. */
export type Cleanup = (fn: () => Promise<void>) => void

export interface ServerProcess {
  proc: ChildProcess
  dir: string
  /** The last 20 KB it printed. */
  output: () => string
}

/** A port nobody listens on at 127.0.0.1 now. */
export async function freeLoopbackPort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)) })
  })
}

/** Starts `command` with `args(dir)` in a fresh temp dir. */
export async function startServer (command: string, args: (dir: string) => string[], cleanup: Cleanup): Promise<ServerProcess> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-server-'))
  const proc = spawn(command, args(dir), { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
  let out = ''
  const keep = (b: Buffer): void => { out = (out + b.toString()).slice(-20_000) }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  const orphan = (): void => { proc.kill('SIGKILL') }
  process.once('exit', orphan)
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  cleanup(async () => {
    process.off('exit', orphan)
    if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGKILL'); await exited }
    await rm(dir, { recursive: true, force: true })
  })
  return { proc, dir, output: () => out }
}

/** Resolves once `s` answers a TCP connect at 127.0.0.1:`port`; throws with its output if it exited. */
export async function listening (s: ServerProcess, port: number, what: string): Promise<void> {
  await waitFor(async () => {
    if (s.proc.exitCode !== null) throw new Error(`${what} exited: ${s.output().slice(-2000)}`)
    return await new Promise<boolean>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true) })
      c.once('error', () => resolve(false))
    })
  }, { what: `${what} to listen on 127.0.0.1:${port}`, timeoutMs: 20_000 })
}

export const REDIS_SERVER = '/usr/bin/redis-server'

/**
 * A redis-server asking for `password`, without persistence. Gives the lease-redis config
 * image.json would hold: its url and a file with the password.
 */
export async function startRedis (cleanup: Cleanup, password: string): Promise<{ url: string, passwordFile: string, server: ServerProcess }> {
  const port = await freeLoopbackPort()
  const server = await startServer(REDIS_SERVER, (dir) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--requirepass', password], cleanup)
  await listening(server, port, 'redis-server')
  const passwordFile = join(server.dir, 'password')
  await writeFile(passwordFile, password + '\n', { mode: 0o600 })
  return { url: `redis://127.0.0.1:${port}`, passwordFile, server }
}
