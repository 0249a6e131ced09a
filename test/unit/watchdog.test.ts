import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type { Logger } from '../../node/log'
import { probeContainment } from '../../node/supervisor/contain'
import { ManagedProcess } from '../../node/supervisor/process'
import { startTimeOf } from '../../node/supervisor/procfs'
import { Watchdog, shellWithReadTimeout } from '../../node/supervisor/watchdog'
import { gone } from '../helpers/procs'
import { waitFor } from '../helpers/wait'

const procs = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'procs')
const dist = join(__dirname, '..', '..')

/** A logger that keeps its lines. */
function recorder (): Logger & { lines: string[] } {
  const lines: string[] = []
  const log = { lines, debug: () => {}, info: (m: string) => { lines.push(m) }, warn: (m: string) => { lines.push(m) }, error: (m: string) => { lines.push(m) }, child: () => log }
  return log
}

/** Stands for a node not being scheduled: this thread (its event loop, its timers) does nothing for `ms`. */
function freeze (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** A `sleep` in its own process group, killed after the test. */
async function sleeper (t: ExecutionContext): Promise<{ pid: number, start: number }> {
  const child = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' })
  t.teardown(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch {} })
  const start = await waitFor(() => startTimeOf(child.pid!), { what: 'the sleep to start' })
  return { pid: child.pid!, start }
}

let shell: string | undefined
test.before(async () => { shell = await shellWithReadTimeout(['/bin/bash', '/usr/bin/bash', '/bin/sh']) })

function needsShell (t: ExecutionContext): boolean {
  if (shell !== undefined) return true
  t.log('skipped: no shell with `read -t` (bash) on this machine')
  t.pass()
  return false
}

async function started (t: ExecutionContext, timeoutMs: number, onLapse?: (ids: string[], why: string) => void): Promise<{ w: Watchdog, log: ReturnType<typeof recorder> }> {
  const log = recorder()
  const w = new Watchdog({ timeoutMs, log, onLapse })
  await w.start()
  t.teardown(async () => { await w.stop() })
  return { w, log }
}

test.serial('watchdog: a paused node\'s fenced processes are killed once it has not renewed for the timeout', async (t) => {
  if (!needsShell(t)) return
  const node = spawn(process.execPath, [join(procs, 'node-with-watchdog.js'), dist, '500'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { node.kill('SIGKILL') })
  let out = ''
  node.stdout.on('data', (b: Buffer) => { out += b.toString() })
  const line = await waitFor(() => out.split('\n').find((l) => l.startsWith('{')), { what: 'the pids from the stand-in node' })
  const { watchdog, sleep } = JSON.parse(line) as { watchdog: number, sleep: number }
  t.teardown(() => { try { process.kill(-sleep, 'SIGKILL') } catch {} })
  node.kill('SIGSTOP')
  const stoppedAt = Date.now()
  await waitFor(async () => await gone(sleep), { what: 'the fenced process to be killed', timeoutMs: 5000, intervalMs: 10 })
  const took = Date.now() - stoppedAt
  t.log(`killed ${took} ms after the node stopped (timeout 500 ms, renewals every 100 ms)`)
  t.true(took >= 350, `not before the timeout: ${took} ms`)
  t.true(took < 1500, `soon after the timeout: ${took} ms`)
  t.false(await gone(watchdog), 'the watchdog keeps running')
  node.kill('SIGCONT')
})

test.serial('watchdog: it ends with its node, killed or not', async (t) => {
  if (!needsShell(t)) return
  const node = spawn(process.execPath, [join(procs, 'node-with-watchdog.js'), dist, '60000'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { node.kill('SIGKILL') })
  let out = ''
  node.stdout.on('data', (b: Buffer) => { out += b.toString() })
  const line = await waitFor(() => out.split('\n').find((l) => l.startsWith('{')), { what: 'the pids from the stand-in node' })
  const { watchdog, sleep } = JSON.parse(line) as { watchdog: number, sleep: number }
  t.teardown(() => { try { process.kill(-sleep, 'SIGKILL') } catch {} })
  node.kill('SIGKILL')
  await waitFor(async () => await gone(watchdog), { what: 'the watchdog to end', timeoutMs: 5000 })
  t.pass()
})

test.serial('watchdog: a node busy for less than 4/5 of the timeout kills nothing', async (t) => {
  if (!needsShell(t)) return
  const s = await sleeper(t)
  const lapses: string[][] = []
  const { w } = await started(t, 600, (ids) => { lapses.push(ids) })
  let asked = 0
  w.track({ id: 'busy-0', fenceTargets: () => { asked++; return [`g:${s.pid}:${s.start}`] } })
  for (let i = 0; i < 4; i++) {
    freeze(350) // renewals every 120 ms: the longest gap is 350 + 120 < 600
    const seen = asked
    await waitFor(() => asked >= seen + 2, { what: 'two renewals' })
  }
  t.false(await gone(s.pid), 'the process runs on')
  t.deepEqual(lapses, [])
})

test.serial('watchdog: after a gap the node gives up what it fenced, and the watchdog says what it killed; a reused pid is left alone', async (t) => {
  if (!needsShell(t)) return
  const s = await sleeper(t)
  const other = await sleeper(t)
  const lapses: Array<{ ids: string[], why: string }> = []
  const { w, log } = await started(t, 300, (ids, why) => { lapses.push({ ids, why }) })
  w.track({ id: 'one-0', fenceTargets: () => [`g:${s.pid}:${s.start}`] })
  // The pid was one of ours once; the process that has it now started at another time.
  w.track({ id: 'two-0', fenceTargets: () => [`p:${other.pid}:${other.start - 1}`] })
  freeze(800)
  await waitFor(() => lapses.length === 1 && log.lines.some((l) => /^watchdog: no renewal/.test(l)), { what: 'the lapse and the report' })
  t.true(await gone(s.pid), 'killed')
  t.false(await gone(other.pid), 'another process with a pid once ours is left alone')
  t.deepEqual(lapses[0].ids, ['one-0', 'two-0'])
  t.regex(lapses[0].why, /^fenced: this node was not scheduled for 0\.[89] s/)
  t.true(log.lines.includes(`watchdog: no renewal from this node for 0.3 s: SIGKILL to one-0 (g:${s.pid}:${s.start})`), log.lines.join('\n'))
})

test.serial('watchdog: a fenced instance (its whole PID namespace) is killed while the node does not run', async (t) => {
  if (!needsShell(t)) return
  const containment = await probeContainment()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-watchdog-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const lapses: string[][] = []
  const { w } = await started(t, 300, (ids) => { lapses.push(ids) })
  const quiet = recorder()
  const p = new ManagedProcess({
    id: 'single-0', command: '/bin/sh', args: ['-c', `sleep 1000 & ${process.execPath} ${join(procs, 'sleeper.js')}`], env: {}, cwd: dir,
    logPath: join(dir, 'single-0.log'), log: quiet, restart: { policy: 'never' }, stopGraceMs: 500, containment, fence: w
  })
  t.teardown(async () => { await p.stop() })
  p.start()
  const want = containment.pidNamespace ? 4 : 3 // (init,) sh, sleep, node
  const pids = (await waitFor(async () => { const u = await p.usage(); return u !== undefined && u.pids.length >= want ? u : undefined }, { what: 'the instance to run' })).pids
  await waitFor(() => p.fenceTargets().length === (containment.pidNamespace ? 2 : 1), { what: 'its init to be known' })
  freeze(700)
  await waitFor(async () => (await Promise.all(pids.map(gone))).every(Boolean), { what: 'every process of the instance to be gone' })
  await waitFor(() => p.status().state === 'failed', { what: 'the exit to be seen' })
  t.is(p.status().signal, 'SIGKILL')
  t.deepEqual(lapses, [['single-0']])
})
