/**
 * The supervisor decides on its clock: a crashed instance is restarted once the clock has
 * passed its backoff, and not before, however much real time went by. Real child processes
 * throughout; only the time is virtual.
 */
import test from 'ava'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { startNode } from '../../node/assembly'
import { VirtualClock } from '../../node/clock/virtual'
import type { Logger } from '../../node/log'
import { probeContainment } from '../../node/supervisor/contain'
import { ManagedProcess } from '../../node/supervisor/process'
import type { InstanceEvent } from '../../node/supervisor/types'
import { memoryNetwork } from '../../plugins/transport-memory'
import { fastMembership, makeKeys } from '../helpers/cluster'
import { waitFor } from '../helpers/wait'

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet }
const crash = ['-e', 'process.exit(1)']

let dir = ''
test.before(async () => { dir = await mkdtemp(join(os.tmpdir(), 'origin-supervisor-clock-')) })
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

test('supervisor clock: a real child that exits 1 is restarted once virtual time has passed its backoff, not before', async (t) => {
  const clock = new VirtualClock(1_000_000)
  const p = new ManagedProcess({
    id: 'crash-1',
    command: process.execPath,
    args: crash,
    env: {},
    cwd: dir,
    logPath: join(dir, 'logs', 'crash-1.log'),
    log: quiet,
    restart: { policy: 'always', backoffMs: 60_000, maxBackoffMs: 600_000 },
    containment: await probeContainment(),
    clock
  })
  t.teardown(async () => { await p.stop() })
  p.start()
  // The child runs and exits in real time; virtual time stands still meanwhile.
  await waitFor(() => p.status().state === 'backoff', { what: 'the first exit' })
  const exitedAt = clock.now()
  t.is(p.status().restarts, 0)
  t.regex(p.status().reason ?? '', /exited with code 1; restarting in 60\.0 s \(attempt 1\)/)

  await clock.runUntil(exitedAt + 59_999)
  t.is(p.status().state, 'backoff', 'one virtual millisecond short of the backoff it still waits')
  t.is(p.status().restarts, 0)

  await clock.runUntil(exitedAt + 60_000)
  t.is(p.status().restarts, 1, 'restarted the moment virtual time reached the backoff')
  // The second run crashes too: the delay doubles, on the same clock.
  await waitFor(() => p.status().state === 'backoff' && p.status().restarts === 1, { what: 'the second exit' })
  t.regex(p.status().reason ?? '', /restarting in 120\.0 s \(attempt 2\)/)
  t.is(p.status().startedAt, exitedAt + 60_000, 'the status is stamped with the virtual clock')
})

test('supervisor clock: a node on a driven VirtualClock restarts a crashed instance after its backoff in virtual time, in far less real time', async (t) => {
  const keys = await makeKeys(join(dir, 'keys'), 'test')
  const specDir = join(dir, 'spec')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1 }))
  const backoffMs = 30_000
  await writeFile(join(specDir, 'services', 'crash.json'), JSON.stringify({ run: { command: process.execPath, args: crash }, placement: { kind: 'replicas', count: 1 }, restart: { policy: 'always', backoffMs } }))
  const clock = new VirtualClock(Date.now())
  const stopDriving = clock.drive()
  t.teardown(stopDriving)
  const node = await startNode({
    config: { cluster: 'test', listen: '127.79.0.1:7400', seeds: [], data: join(dir, 'n1'), name: 'n1', labels: {}, characteristics: { cpus: 2, memoryMb: 1024 }, membership: fastMembership, hubs: {}, log: { level: 'error' }, specDir },
    keys,
    layers: { transport: memoryNetwork().transport },
    clock
  })
  t.teardown(async () => { await node.stop() })
  const seen: Array<InstanceEvent['status'] & { virtual: number, real: number }> = []
  node.supervisor.events.on('instance', (e) => { seen.push({ ...e.status, virtual: clock.now(), real: Date.now() }) })
  await waitFor(() => seen.some((s) => s.restarts === 1), { what: 'the first restart', timeoutMs: 20_000 })
  const backoff = seen.find((s) => s.state === 'backoff' && s.restarts === 0)
  const restarted = seen.find((s) => s.restarts === 1)
  if (backoff === undefined || restarted === undefined) { t.fail(`no backoff then restart in ${JSON.stringify(seen)}`); return }
  t.true(restarted.virtual - backoff.virtual >= backoffMs, `restarted ${restarted.virtual - backoff.virtual} virtual ms after the exit, backoff ${backoffMs}`)
  t.true(restarted.real - backoff.real < backoffMs / 3, `a backoff of ${backoffMs / 1000} s took ${restarted.real - backoff.real} real ms`)
  t.log(`backoff: ${restarted.virtual - backoff.virtual} virtual ms in ${restarted.real - backoff.real} real ms`)
})
