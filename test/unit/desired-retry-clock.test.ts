/**
 * A follower's retries on a virtual clock: the spec layer's distribution (with its real
 * admission, git store and memory transport) follows a hub that has gone from the network.
 * Each failed take is tried again after retryDelayMs of virtual time (0.5 s, doubling),
 * never sooner, and 15.5 s of them pass in a fraction of that in real time. The member table is the test's: one hub that runs a commit.
 */
import test from 'ava'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../../node/clock/virtual'
import { Admission } from '../../node/desired/admission'
import type { SpecEvents } from '../../node/desired/contract'
import { Distribution, retryDelayMs } from '../../node/desired/distribution'
import { specLimits } from '../../node/desired/limits'
import { GitStore } from '../../node/git/store'
import { loadIdentity } from '../../node/keys'
import type { Logger } from '../../node/log'
import type { MemberTable } from '../../node/membership'
import { memoryNetwork } from '../../plugins/transport-memory'
import { makeKeys } from '../helpers/cluster'
import { waitFor } from '../helpers/wait'

const COMMIT = 'c'.repeat(40)

/** Warnings, each with the virtual time it was logged at. */
function stamped (clock: VirtualClock): Logger & { warnings: Array<{ at: number, line: string }> } {
  const warnings: Array<{ at: number, line: string }> = []
  const log: Logger & { warnings: typeof warnings } = { warnings, debug () {}, info () {}, warn: (line) => warnings.push({ at: clock.now(), line }), error: (line) => warnings.push({ at: clock.now(), line }), child: () => log }
  return log
}

test('desired distribution on a virtual clock: a failed take is tried again after 0.5 s, doubling, of virtual time, never sooner', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-desired-retry-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const keys = await makeKeys(join(dir, 'keys'), 'test')
  const id = await loadIdentity({ keys })
  const clock = new VirtualClock(1_700_000_000_000)
  const log = stamped(clock)
  const transport = memoryNetwork().transport({ listen: 'follower:7400' })({ identity: { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }, log, clock })
  await transport.start()
  t.teardown(async () => { await transport.stop() })
  // The hub runs COMMIT, as gossip says; nothing listens at its address any more.
  const table: MemberTable = {
    hub: { id: 'hub', address: 'hub:7400', incarnation: 1, heartbeat: 1, status: 'alive', hub: true, spec: COMMIT, characteristics: { cpus: 1, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: 0 } }
  }
  const membership = { id: 'follower', table: () => table, setSpec: () => {} }
  const store = new GitStore(join(dir, 'spec.git'))
  await store.init()
  const events = new EventEmitter<SpecEvents>()
  const admission = new Admission({ dataDir: dir, limits: specLimits() }, { store, membership, events, log, cluster: 'test', clock })
  const d = new Distribution({ transport, membership, hubs: { current: () => ['hub'] }, store, events, log, admission, clock })
  t.teardown(() => d.stop())

  const attempts = (): Array<{ at: number, line: string }> => log.warnings.filter((w) => w.line.startsWith(`cannot take spec ${COMMIT.slice(0, 12)} from hub hub`))
  const t0 = clock.now()
  d.start()
  d.follow()
  await waitFor(() => attempts().length === 1, { what: 'the first attempt to fail' })
  t.regex(attempts()[0]!.line, /attempt 1; next in 0\.5 s/)

  let due = t0
  const realStart = Date.now()
  for (const n of [1, 2, 3, 4, 5]) {
    due += retryDelayMs(n)
    await clock.runUntil(due - 1)
    t.is(attempts().length, n, `no attempt ${n + 1} before ${due - t0} ms of virtual time`)
    await clock.runUntil(due)
    await waitFor(() => attempts().length === n + 1, { what: `attempt ${n + 1}` })
    t.is(attempts()[n]!.at, due, `attempt ${n + 1} at ${due - t0} ms of virtual time`)
  }
  t.regex(attempts()[5]!.line, /attempt 6; next in 16\.0 s/)
  t.true(Date.now() - realStart < (due - t0) / 2, `${due - t0} ms of virtual time took ${Date.now() - realStart} ms of real time`)
})
