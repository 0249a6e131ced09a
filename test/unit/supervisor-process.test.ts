import test from 'ava'
import { freePort } from '../../node/supervisor/ports'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { OriginError } from '../../node/errors'
import type { Logger } from '../../node/log'
import { probeContainment, type Containment } from '../../node/supervisor/contain'
import { readLog } from '../../node/logfile'
import { ManagedProcess, killAllGroups, waitReady, type InstanceStatus, type ManagedProcessOptions } from '../../node/supervisor/process'
import { waitFor } from '../helpers/wait'
import { systemClock } from '../../node/clock'
import { VirtualClock } from '../../node/clock/virtual'

const procs = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'procs')

/** Every test runs contained as a node here would be: in a PID namespace where the machine allows it. */
let containment: Containment
test.before(async () => { containment = await probeContainment() })

/** A logger that keeps its lines, to check what was said. */
function recordingLogger (): Logger & { lines: string[] } {
  const lines: string[] = []
  const make = (scope: string): Logger => ({
    debug: () => {},
    info: (m) => { lines.push(`info ${scope}: ${m}`) },
    warn: (m) => { lines.push(`warn ${scope}: ${m}`) },
    error: (m) => { lines.push(`error ${scope}: ${m}`) },
    child: (sub) => make(`${scope}/${sub}`)
  })
  return Object.assign(make('supervisor'), { lines })
}

interface Harness {
  p: ManagedProcess
  log: Logger & { lines: string[] }
  logPath: string
  dir: string
  /** Every status the process emitted, in order, with when it came. */
  seen: Array<InstanceStatus & { at: number }>
  text (): Promise<string>
}

type T = { teardown (fn: () => Promise<void>): void }

async function tempDir (t: T): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-proc-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** A managed fixture script with short test timings; stopped and its temp dir removed after the test. */
async function managed (t: T, script: string, args: string[] = [], o: Partial<ManagedProcessOptions> = {}): Promise<Harness> {
  const dir = await tempDir(t)
  const log = recordingLogger()
  const logPath = join(dir, 'logs', 'inst-1.log')
  const p = new ManagedProcess({
    id: 'inst-1',
    command: process.execPath,
    args: [join(procs, script), ...args],
    env: {},
    cwd: dir,
    logPath,
    log,
    restart: { policy: 'never', backoffMs: 50 },
    stopGraceMs: 2000,
    sampleIntervalMs: 100,
    containment,
    ...o
  })
  const seen: Harness['seen'] = []
  const clock = o.clock ?? systemClock
  p.on('status', (s) => seen.push({ ...s, at: clock.now() }))
  t.teardown(async () => { await p.stop() })
  return { p, log, logPath, dir, seen, text: async () => await readLog(logPath) }
}


/** The state letter in /proc/<pid>/stat (R, S, T, Z, ...), or undefined when there is no such process. */
function procState (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
  }
}

/**
 * The host pid of the instance's process whose command line passes `match`: in a PID
 * namespace the pid a fixture prints is its namespace's, not the one /proc here knows.
 */
async function pidOf (h: Harness, match: (argv: string[]) => boolean, what: string): Promise<number> {
  return await waitFor(async () => ((await h.p.usage())?.pids ?? []).find((pid) => {
    try { return match(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')) } catch { return false }
  }), { what })
}

/** `node .../sleeper.js` (not the init, whose arguments end with the same). */
const sleeperPid = async (h: Harness): Promise<number> => await pidOf(h, (argv) => argv[0] === process.execPath && argv[1]?.endsWith('sleeper.js'), 'the sleeper')
/** forker.js's grandchild: `node -e 'setInterval(...)'`. */
const grandchildPid = async (h: Harness): Promise<number> => await pidOf(h, (argv) => argv[0] === process.execPath && argv[1] === '-e', 'the grandchild of forker.js')

/**
 * Not running: no such process (ESRCH), or a zombie. A zombie remains where PID 1 does not
 * reap orphans (some containers); it is dead and holds nothing but its pid.
 */
function gone (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
  return procState(pid) === 'Z'
}

test('supervisor: a process without a health check is ready as soon as it is spawned', async (t) => {
  const h = await managed(t, 'sleeper.js')
  h.p.start()
  const s = await waitReady(h.p, 5000)
  t.is(s.state, 'ready')
  t.is(typeof s.pid, 'number')
  t.is(s.restarts, 0)
  await waitFor(async () => (await h.text()).includes(`origin started pid ${s.pid!}`), { what: 'the start in the instance log' })
})

test('supervisor: both output streams are captured in the instance log, timestamped', async (t) => {
  const h = await managed(t, 'sleeper.js')
  h.p.start()
  const text = await waitFor(async () => {
    const x = await h.text()
    return x.includes(' err sleeper says hello') && x.includes(' out sleeper started') ? x : undefined
  }, { what: 'both streams in the log' })
  for (const line of text.trimEnd().split('\n')) t.regex(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (out|err|origin) /)
})

test('supervisor: stop is graceful for a process that honours SIGTERM', async (t) => {
  const h = await managed(t, 'sleeper.js')
  h.p.start()
  await waitFor(async () => (await h.text()).includes('sleeper started'), { what: 'the sleeper to run' })
  await h.p.stop()
  const s = h.p.status()
  t.is(s.state, 'stopped')
  t.is(s.exitCode, 0)
  t.is(s.pid, undefined)
  t.true((await h.text()).includes('out sleeper got SIGTERM'))
})

test('supervisor: a passing http health check makes the process ready', async (t) => {
  const port = await freePort()
  const h = await managed(t, 'http-ok.js', [], { env: { PORT: String(port) }, health: { http: { port, path: '/health' }, intervalMs: 100 } })
  h.p.start()
  t.is(h.p.status().state, 'starting')
  await waitReady(h.p, 10_000)
  t.true(h.seen.some((s) => s.state === 'starting'), 'starting before ready')
  t.true((await h.text()).includes(`ready (GET http://127.0.0.1:${port}/health -> 200)`))
})

test('supervisor: an http health check defaults to the instance PORT', async (t) => {
  const port = await freePort()
  const h = await managed(t, 'http-ok.js', [], { env: { PORT: String(port) }, health: { http: {}, intervalMs: 100 } })
  h.p.start()
  await waitReady(h.p, 10_000)
  t.pass()
})

test('supervisor: a failing health check keeps the process starting, with the reason', async (t) => {
  const port = await freePort()
  const h = await managed(t, 'http-sick.js', [], { env: { PORT: String(port) }, health: { http: { port, path: '/health' }, intervalMs: 100 } })
  h.p.start()
  await waitFor(() => h.p.status().reason?.endsWith('-> 503'), { what: 'a 503 in the reason' })
  const s = h.p.status()
  t.is(s.state, 'starting')
  t.is(s.reason, `health check failing: GET http://127.0.0.1:${port}/health -> 503`)
  const err = await t.throwsAsync(waitReady(h.p, 300))
  t.true(err instanceof OriginError && err.code === 'E_NOT_READY')
  t.regex(err!.message, /not ready after 300 ms: starting \(health check failing: .* -> 503\)/)
})

test('supervisor: a ready process whose checks fail turns unhealthy and keeps running', async (t) => {
  const port = await freePort()
  const flag = join(await tempDir(t), 'sick')
  const h = await managed(t, 'http-sick.js', [], {
    env: { PORT: String(port), SICK_FLAG: flag },
    restart: { policy: 'always', backoffMs: 50 },
    health: { http: { port, path: '/health' }, intervalMs: 100 }
  })
  h.p.start()
  const ready = await waitReady(h.p, 10_000)
  await writeFile(flag, '')
  await waitFor(() => h.p.status().state === 'unhealthy', { what: 'unhealthy' })
  const s = h.p.status()
  t.is(s.reason, `health check failing: GET http://127.0.0.1:${port}/health -> 503`)
  t.is(s.pid, ready.pid, 'still the same process')
  t.true(h.log.lines.some((l) => l.startsWith('warn supervisor/inst-1: unhealthy: health check failing')))
  await rm(flag)
  await waitFor(() => h.p.status().state === 'ready', { what: 'healthy again' })
  t.is(h.p.status().reason, undefined)
})

test('supervisor: a crashing process is restarted with growing delays', async (t) => {
  // On a driven virtual clock the delay between an exit and the restart is exactly the
  // backoff, however long the machine takes to start the process.
  const clock = new VirtualClock()
  t.teardown(clock.drive({ stepMs: 5, realMs: 1 }))
  const h = await managed(t, 'crasher.js', ['3', '0'], {
    restart: { policy: 'on-failure', backoffMs: 50, maxBackoffMs: 10_000 },
    crashLoop: { restarts: 100, windowMs: 60_000 },
    clock
  })
  h.p.start()
  await waitFor(() => h.p.status().restarts >= 4, { what: '4 restarts' })
  const backoffs = h.seen.filter((s) => s.state === 'backoff')
  t.is(backoffs[0]!.reason, 'exited with code 3; restarting in 50 ms (attempt 1)')
  t.is(backoffs[1]!.reason, 'exited with code 3; restarting in 0.1 s (attempt 2)')
  t.is(backoffs[2]!.reason, 'exited with code 3; restarting in 0.2 s (attempt 3)')
  t.is(backoffs[0]!.exitCode, 3)
  // From each exit to the next run (ready at once: it has no readiness check), in the
  // clock's time: the backoff, doubling.
  const gaps: number[] = []
  let exitAt: number | undefined
  for (const s of h.seen) {
    if (s.state === 'backoff') exitAt = s.at
    else if (s.state === 'ready' && exitAt !== undefined) { gaps.push(s.at - exitAt); exitAt = undefined }
  }
  t.deepEqual(gaps.slice(0, 3), [50, 100, 200])
  const text = await h.text()
  t.true(text.includes('origin exited with code 3'))
  t.true(text.includes('origin restarting in 0.1 s (attempt 2)'))
  t.true(text.includes('out crasher will exit with code 3'))
})

test('supervisor: a crash loop ends in failed, with the reason', async (t) => {
  const h = await managed(t, 'crasher.js', ['1', '0'], {
    restart: { policy: 'always', backoffMs: 10 },
    crashLoop: { restarts: 3, windowMs: 10_000 }
  })
  h.p.start()
  await waitFor(() => h.p.status().state === 'failed', { what: 'failed' })
  const s = h.p.status()
  t.is(s.reason, 'crash loop: 3 restarts within 10 s, not restarting (last: exited with code 1)')
  t.is(s.restarts, 3)
  t.true(h.log.lines.some((l) => l.startsWith('error supervisor/inst-1: crash loop: 3 restarts within 10 s')))
  await t.throwsAsync(waitReady(h.p, 1000), { message: /will not become ready: failed \(crash loop/ })
})

test('supervisor: on-failure does not restart a process that exited 0', async (t) => {
  const h = await managed(t, 'crasher.js', ['0', '0'], { restart: { policy: 'on-failure', backoffMs: 10 } })
  h.p.start()
  await waitFor(() => h.p.status().state === 'stopped', { what: 'stopped' })
  const s = h.p.status()
  t.is(s.reason, 'exited with code 0')
  t.is(s.exitCode, 0)
  t.is(s.restarts, 0)
})

test('supervisor: never does not restart, and a non-zero exit is failed', async (t) => {
  const h = await managed(t, 'crasher.js', ['2', '0'], { restart: { policy: 'never', backoffMs: 10 } })
  h.p.start()
  await waitFor(() => h.p.status().state === 'failed', { what: 'failed' })
  t.is(h.p.status().reason, 'exited with code 2')
  t.is(h.p.status().restarts, 0)
  t.false(h.seen.some((s) => s.state === 'backoff'))
})

test('supervisor: a process over its memory limit is killed, with the reason, and restarted by policy', async (t) => {
  const h = await managed(t, 'hog.js', [], { memoryLimitMb: 64, sampleIntervalMs: 100, restart: { policy: 'on-failure', backoffMs: 20_000 } })
  h.p.start()
  await waitFor(() => h.p.status().state === 'backoff', { what: 'backoff after the kill' })
  const s = h.p.status()
  t.regex(s.reason!, /^exceeded memory limit 64 MB: rss (\d+) MB \(the whole (instance|process group), \d+ process(es)?\); restarting in 20\.0 s \(attempt 1\)$/)
  t.true(Number(/rss (\d+) MB/.exec(s.reason!)![1]) > 64)
  t.is(s.signal, 'SIGKILL')
  t.true((await h.text()).includes('origin exceeded memory limit 64 MB'))
  t.true(h.log.lines.some((l) => l.startsWith('warn supervisor/inst-1: exceeded memory limit 64 MB')))
})

test('supervisor: stop sends SIGTERM, then SIGKILL after the grace period', async (t) => {
  const h = await managed(t, 'ignores-term.js', [], { stopGraceMs: 300 })
  h.p.start()
  await waitFor(async () => (await h.text()).includes('ignores-term started'), { what: 'the SIGTERM handler to be set' })
  const t0 = Date.now()
  await h.p.stop()
  t.true(Date.now() - t0 >= 300, 'waited for the grace period')
  const s = h.p.status()
  t.is(s.state, 'stopped')
  t.is(s.signal, 'SIGKILL')
  const text = await h.text()
  t.true(text.includes('out ignoring SIGTERM'))
  t.regex(text, /origin still running after 0\.3 s: SIGKILL to the (instance|group)\n/)
})

test('supervisor: pause stops the instance and resume continues it', async (t) => {
  const h = await managed(t, 'sleeper.js')
  h.p.start()
  const { pid } = await waitReady(h.p, 5000)
  const sleeper = await sleeperPid(h)
  h.p.pause()
  t.is(h.p.status().state, 'paused')
  await waitFor(() => procState(sleeper) === 'T', { what: 'state T in /proc' })
  h.p.resume()
  t.is(h.p.status().state, 'ready')
  await waitFor(() => procState(sleeper) !== 'T', { what: 'running again' })
  t.is(h.p.status().pid, pid)
})

test('supervisor: stop kills the whole instance, leaving no orphan', async (t) => {
  const h = await managed(t, 'forker.js')
  h.p.start()
  const grandchild = await grandchildPid(h)
  t.false(gone(grandchild), 'the grandchild runs')
  await h.p.stop()
  await waitFor(() => gone(grandchild), { what: 'the grandchild to be gone', timeoutMs: 5000 })
  t.pass()
})

test('supervisor: killAllGroups kills every process and nothing restarts', async (t) => {
  const a = await managed(t, 'sleeper.js', [], { restart: { policy: 'always', backoffMs: 10 } })
  const b = await managed(t, 'forker.js', [], { restart: { policy: 'always', backoffMs: 10 } })
  a.p.start()
  b.p.start()
  await waitReady(a.p, 5000)
  await waitReady(b.p, 5000)
  const grandchild = await grandchildPid(b)
  killAllGroups([a.p, b.p])
  await waitFor(() => a.p.status().state === 'stopped' && b.p.status().state === 'stopped', { what: 'both stopped' })
  t.is(a.p.status().signal, 'SIGKILL')
  await waitFor(() => gone(grandchild), { what: 'the grandchild to be gone', timeoutMs: 5000 })
  t.is(a.p.status().restarts, 0)
})

test('supervisor: a command that does not exist fails with the reason', async (t) => {
  const h = await managed(t, 'sleeper.js', [], { command: 'origin-no-such-command', restart: { policy: 'never' } })
  h.p.start()
  await waitFor(() => h.p.status().state === 'failed', { what: 'failed' })
  t.is(h.p.status().reason, 'could not start: origin-no-such-command not found on the PATH')
})
