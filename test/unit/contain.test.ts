import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type { Logger } from '../../node/log'
import { containCommand, endLeftovers, groupContainment, probeContainment, type Containment, type InstanceRecord } from '../../node/supervisor/contain'
import { readLog } from '../../node/logfile'
import { ManagedProcess, type ManagedProcessOptions } from '../../node/supervisor/process'
import { startTimeOf } from '../../node/supervisor/procfs'
import { waitFor } from '../helpers/wait'

const procs = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'procs')
const dist = join(__dirname, '..', '..')

let containment: Containment
test.before(async () => { containment = await probeContainment() })

/** The tests of the namespace guarantee run where the probe found one; elsewhere they say why they did not. */
function needsNamespace (t: ExecutionContext): boolean {
  if (containment.pidNamespace) return true
  t.log(`skipped: no PID namespace on this machine (${containment.detail})`)
  t.pass()
  return false
}

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet }

async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-contain-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** A ManagedProcess in a temp dir with short timings, contained as the probe says unless told; stopped after the test. */
async function managed (t: ExecutionContext, command: string, args: string[], o: Partial<ManagedProcessOptions> = {}): Promise<{ p: ManagedProcess, dir: string, text: () => Promise<string> }> {
  const dir = await tempDir(t)
  const logPath = join(dir, 'inst-1.log')
  const p = new ManagedProcess({
    id: 'inst-1', command, args, env: {}, cwd: dir, logPath, log: quiet,
    restart: { policy: 'never' }, stopGraceMs: 500, sampleIntervalMs: 100, containment, ...o
  })
  t.teardown(async () => { await p.stop() })
  return { p, dir, text: async () => await readLog(logPath) }
}

/** Gone: no such process, or a zombie (where PID 1 does not reap, a dead orphan stays one). */
function gone (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

/** Clock ticks since boot, the unit of a process's start time (USER_HZ, 100 a second). */
function ticksNow (): number {
  return Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100)
}

/**
 * Live processes in PID namespace `ns` that started by tick `before`, straight from /proc.
 * Once a namespace is gone the kernel may give its inode number to a new one (another
 * test's instance), whose processes all start later.
 */
function inNamespace (ns: string, before: number): number[] {
  const pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number)
  return pids.filter((pid) => { try { return readlinkSync(`/proc/${pid}/ns/pid`) === ns && (startTimeOf(pid) ?? Infinity) <= before } catch { return false } })
}

/** Waits until the instance has at least `n` processes; returns their pids. */
async function processes (p: ManagedProcess, n: number): Promise<number[]> {
  return (await waitFor(async () => { const u = await p.usage(); return u !== undefined && u.pids.length >= n ? u : undefined }, { what: `${n} processes in the instance` })).pids
}

const node = process.execPath
const workers = join(procs, 'setsid-workers.js')

test('contain: the probe says in one line what this node can guarantee', async (t) => {
  t.log(containment.detail)
  t.regex(containment.detail, /^[^\n]+$/)
  t.regex(containment.detail, containment.pidNamespace ? /own PID namespace.*: nothing they start outlives them/ : /outlive/)
  const wrapped = containCommand(containment, 'node', ['server.js'])
  t.deepEqual(wrapped.args.slice(-2), ['node', 'server.js'])
})

test('contain: where unshare is not permitted, the probe says what cannot be guaranteed, and why', async (t) => {
  const fake = join(await tempDir(t), 'unshare')
  await writeFile(fake, '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n', { mode: 0o755 })
  const c = await probeContainment({ unshare: fake })
  t.false(c.pidNamespace)
  t.regex(c.detail, /^cannot give instances their own PID namespace \(unshare: unshare failed: Operation not permitted\): a process that leaves its process group may outlive its instance/)
  t.regex(c.detail, /^[^\n]+$/)
})

test('contain: stop leaves nothing of an `sh -c` without exec behind', async (t) => {
  if (!needsNamespace(t)) return
  const h = await managed(t, '/bin/sh', ['-c', `sleep 1000 & ${node} ${join(procs, 'sleeper.js')}`])
  h.p.start()
  const pids = await processes(h.p, 4) // init, sh, sleep, node
  const ns = readlinkSync(`/proc/${pids[0]}/ns/pid`)
  const before = ticksNow()
  await h.p.stop()
  for (const pid of pids) t.true(gone(pid), `pid ${pid} is gone`)
  t.deepEqual(inNamespace(ns, before), [])
})

test('contain: stop ends workers that left the process group and ignore SIGTERM', async (t) => {
  if (!needsNamespace(t)) return
  const h = await managed(t, node, [workers, '3'])
  h.p.start()
  const pids = await processes(h.p, 5) // init, master, 3 workers
  const ns = readlinkSync(`/proc/${pids[0]}/ns/pid`)
  const before = ticksNow()
  await h.p.stop()
  t.is(h.p.status().signal, 'SIGKILL', 'the workers held on until the grace period ended')
  for (const pid of pids) t.true(gone(pid), `pid ${pid} is gone`)
  t.deepEqual(inNamespace(ns, before), [])
  t.true((await h.text()).includes('out master got SIGTERM'))
})

test('contain: output of processes that left the group reaches the instance log', async (t) => {
  if (!needsNamespace(t)) return
  const h = await managed(t, node, [workers, '2'])
  h.p.start()
  await waitFor(async () => ((await h.text()).match(/ out worker \d+ in session/g) ?? []).length === 2, { what: 'both workers in the log' })
  t.pass()
})

test('contain: pause stops every process of the instance, workers in their own session included', async (t) => {
  if (!needsNamespace(t)) return
  const h = await managed(t, node, [workers, '2'])
  h.p.start()
  const pids = await processes(h.p, 4)
  // PID 1 of the namespace does the stopping and stays awake to resume it.
  const others = pids.filter((pid) => !/NSpid:\s+\d+\s+1\n/.test(readFileSync(`/proc/${pid}/status`, 'utf8')))
  t.is(others.length, 3)
  const state = (pid: number): string => { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); return s.slice(s.lastIndexOf(')') + 2)[0] }
  h.p.pause()
  await waitFor(() => others.every((pid) => state(pid) === 'T'), { what: 'every process stopped' })
  h.p.resume()
  await waitFor(() => others.every((pid) => state(pid) !== 'T'), { what: 'every process running again' })
  t.is(h.p.status().state, 'ready')
})

test('contain: a paused instance stops gracefully: SIGTERM reaches every process once it continues', async (t) => {
  if (!needsNamespace(t)) return
  const h = await managed(t, '/bin/sh', ['-c', `sleep 1000 & ${node} ${join(procs, 'sleeper.js')}`], { stopGraceMs: 5000 })
  h.p.start()
  const pids = await processes(h.p, 4)
  h.p.pause()
  await h.p.stop()
  t.true((await h.text()).includes('out sleeper got SIGTERM'))
  t.not(h.p.status().signal, 'SIGKILL', 'no need for the grace period to end')
  for (const pid of pids) t.true(gone(pid), `pid ${pid} is gone`)
})

test('contain: a stop right after the start is not lost', async (t) => {
  if (!needsNamespace(t)) return
  const h = await managed(t, node, [join(procs, 'sleeper.js')], { stopGraceMs: 10_000 })
  h.p.start()
  const t0 = Date.now()
  await h.p.stop()
  t.true(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms, before the grace period ended`)
  t.not(h.p.status().signal, 'SIGKILL')
})

test('contain: without a namespace, an instance is its process group', async (t) => {
  const h = await managed(t, node, [join(procs, 'forker.js')], { containment: groupContainment() })
  h.p.start()
  const pids = await processes(h.p, 2) // forker and its grandchild
  t.true(pids.includes(h.p.status().pid!), 'the spawned process leads the group')
  await h.p.stop()
  for (const pid of pids) t.true(gone(pid), `pid ${pid} is gone`)
  t.regex(await h.text(), /origin stopping: SIGTERM to the group/)
})

test('contain: usage sums the CPU time of every process of the instance', async (t) => {
  // Two processes, each busy until it has used 0.3 s of CPU, then idle.
  const busy = 'while (process.cpuUsage().user < 300000); setInterval(() => {}, 1000)'
  const h = await managed(t, '/bin/sh', ['-c', `${node} -e '${busy}' & exec ${node} -e '${busy}'`])
  h.p.start()
  const u = await waitFor(async () => { const x = await h.p.usage(); return x !== undefined && x.cpuTicks >= 50 ? x : undefined }, { what: '0.5 s of CPU in the instance' })
  t.true(u.pids.length >= 2)
  t.true(u.rssKb > 10_000, `rss ${u.rssKb} kB`)
})

test('contain: an exit status 128+N from the init is reported as killed by signal N', async (t) => {
  if (!needsNamespace(t)) return
  const h = await managed(t, '/bin/sh', ['-c', 'kill -USR1 $$'])
  h.p.start()
  await waitFor(() => h.p.status().state === 'failed', { what: 'failed' })
  t.is(h.p.status().reason, 'killed by SIGUSR1')
  t.is(h.p.status().signal, 'SIGUSR1')
  t.is(h.p.status().exitCode, null)
})

test('contain: nothing of an instance outlives a node killed with SIGKILL', async (t) => {
  if (!needsNamespace(t)) return
  const dir = await tempDir(t)
  const fake = spawn(node, [join(procs, 'node-with-instance.js'), dist, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { fake.kill('SIGKILL') })
  let out = ''
  fake.stdout.on('data', (b: Buffer) => { out += b.toString() })
  const line = await waitFor(() => out.split('\n').find((l) => l.startsWith('{')), { what: 'the pids from the stand-in node' })
  const { pids } = JSON.parse(line) as { pids: number[] }
  t.is(pids.length, 6)
  for (const pid of pids) t.false(gone(pid))
  fake.kill('SIGKILL')
  await waitFor(() => pids.every(gone), { what: 'every process of the instance to be gone', timeoutMs: 5000 })
  t.pass()
})

test('contain: endLeftovers ends a recorded instance that still runs', async (t) => {
  if (!needsNamespace(t)) return
  const runDir = join(await tempDir(t), 'run')
  const h = await managed(t, '/bin/sh', ['-c', `sleep 1000 & ${node} ${workers} 2`], { recordDir: runDir })
  h.p.start()
  const pids = await processes(h.p, 6)
  // What a crashed node leaves: the record of an instance that runs on.
  const [name] = await waitFor(async () => { const n = await readdir(runDir); return n.length === 1 ? n : undefined })
  const record = JSON.parse(await readFile(join(runDir, name), 'utf8')) as InstanceRecord
  t.true(pids.includes(record.init!.pid), 'the record names the init')
  const leftovers = join(h.dir, 'leftovers')
  await mkdir(leftovers)
  await copyFile(join(runDir, name), join(leftovers, name))
  const ended = await endLeftovers(leftovers)
  t.deepEqual(ended, [`ended inst-1, left running by a previous run of this node (pid ${record.pid}, its PID namespace, 6 processes)`])
  for (const pid of pids) t.true(gone(pid), `pid ${pid} is gone`)
  t.deepEqual(await readdir(leftovers), [])
  await waitFor(async () => (await readdir(runDir)).length === 0, { what: 'the instance to remove its own record once it exited' })
})

test('contain: endLeftovers ends the process group of a recorded instance where there is no namespace', async (t) => {
  const h = await managed(t, node, [join(procs, 'forker.js')], { containment: groupContainment(), recordDir: join(await tempDir(t), 'run') })
  h.p.start()
  const pids = await processes(h.p, 2) // forker and its grandchild
  const runDir = join(h.dir, 'leftovers')
  await mkdir(runDir)
  const rec: InstanceRecord = { id: 'inst-1', pid: h.p.status().pid!, startTime: startTimeOf(h.p.status().pid!)! }
  await writeFile(join(runDir, `inst-1.${rec.pid}.json`), JSON.stringify(rec))
  const ended = await endLeftovers(runDir)
  t.deepEqual(ended, [`ended inst-1, left running by a previous run of this node (pid ${rec.pid}, its process group, 2 processes)`])
  for (const pid of pids) t.true(gone(pid))
})

test('contain: endLeftovers leaves alone a pid that now names another process', async (t) => {
  const dir = await tempDir(t)
  const other = spawn('sleep', ['1000'], { stdio: 'ignore' })
  t.teardown(() => { other.kill('SIGKILL') })
  const pid = other.pid!
  const startTime = await waitFor(() => startTimeOf(pid))
  // The pid was ours once, but the process that has it now started at another time.
  const rec: InstanceRecord = { id: 'web-1', pid, startTime: startTime - 1, init: { pid, startTime: startTime - 1, ns: 'pid:[1]' } }
  await writeFile(join(dir, `web-1.${pid}.json`), JSON.stringify(rec))
  t.deepEqual(await endLeftovers(dir), [])
  t.false(gone(pid), 'the other process still runs')
  t.deepEqual(await readdir(dir), [], 'the stale record is removed')
})

test('contain: endLeftovers without a record dir ends nothing', async (t) => {
  t.deepEqual(await endLeftovers(join(os.tmpdir(), 'origin-no-such-dir')), [])
})

test('contain: the memory limit counts every process of the instance, workers in their own session included', async (t) => {
  if (!needsNamespace(t)) return
  const h = await managed(t, node, [workers, '2', 'grow'], { memoryLimitMb: 250, restart: { policy: 'on-failure', backoffMs: 20_000 } })
  h.p.start()
  await waitFor(() => h.p.status().state === 'backoff', { what: 'backoff after the kill' })
  const reason = h.p.status().reason!
  const m = /^exceeded memory limit 250 MB: rss (\d+) MB \(the whole instance, (\d+) processes\); restarting in 20\.0 s/.exec(reason)
  t.truthy(m, reason)
  t.true(Number(m![1]) > 250)
  t.log(reason)
  // The master alone holds well under the limit: what it is over by is in its workers.
  t.true(Number(m![2]) >= 3, 'init, master and at least one worker')
  t.is(h.p.status().signal, 'SIGKILL')
})
