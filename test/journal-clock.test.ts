/**
 * The journal on a virtual clock: two nodes in this process (memory transport, their real
 * membership and hubs layers, one VirtualClock), node a journaling. Entries carry the
 * clock's time, so a failure's timeline reads in virtual time: the cut member is suspect,
 * then dead no sooner than `suspectAfterMs` of virtual time later, and not before that much
 * virtual time has passed.
 */
import test, { type ExecutionContext } from 'ava'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../node/clock/virtual'
import { hubs, type Hubs } from '../node/hubs'
import { journal, type Journal, type JournalEvent } from '../node/journal'
import { loadIdentity } from '../node/keys'
import { silentLogger } from '../node/log'
import { membership, type Membership } from '../node/membership'
import { memoryNetwork, type MemoryNetwork } from '../plugins/transport-memory'
import type { Transport } from '../node/transport'
import { fastMembership, makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const SUSPECT_MS = fastMembership.suspectAfterMs

let keys = ''
test.before(async () => { keys = await makeKeys(await mkdtemp(join(os.tmpdir(), 'origin-journal-clock-keys-')), 'test') })
test.after.always(async () => { if (keys !== '') await rm(keys, { recursive: true, force: true }) })

interface Node { transport: Transport, membership: Membership, hubs: Hubs }

async function node (t: ExecutionContext, net: MemoryNetwork, clock: VirtualClock, name: string, seeds: string[]): Promise<Node> {
  const id = await loadIdentity({ keys })
  const identity = { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
  const transport = net.transport({ listen: `${name}:7400` })({ identity, log: silentLogger, clock })
  const self = { id: name, characteristics: { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: clock.now() } }
  const m = membership({ seeds, ...fastMembership })({ transport, log: silentLogger, self, clock })
  const h = hubs({ policy: { count: 1 } })({ membership: m, log: silentLogger })
  t.teardown(async () => { await h.stop(); await m.stop().catch(() => {}); await transport.stop() })
  await transport.start()
  await m.start()
  await h.start()
  return { transport, membership: m, hubs: h }
}

/** Node a's journal, on `clock`; the spec and supervisor say nothing here (no spec, no instances). */
async function journalOf (t: ExecutionContext, n: Node, clock: VirtualClock): Promise<Journal> {
  const dataDir = await mkdtemp(join(os.tmpdir(), 'origin-journal-clock-'))
  const j = journal({ dataDir })({ membership: n.membership, hubs: n.hubs, spec: { events: new EventEmitter() }, supervisor: { events: new EventEmitter() }, log: silentLogger, clock })
  t.teardown(async () => { await j.stop(); await rm(dataDir, { recursive: true, force: true }) })
  await j.start()
  return j
}

const about = (es: JournalEvent[], member: string, status: string): JournalEvent | undefined =>
  es.find((e) => e.kind === 'member' && e.member === member && e.status === status)

test.serial('journal on a virtual clock: entries carry the clock\'s time, and a query by time reads virtual time', async (t) => {
  const clock = new VirtualClock(1_700_000_000_000)
  const a = await node(t, memoryNetwork(), clock, 'a', [])
  const j = await journalOf(t, a, clock)
  const t0 = clock.now()
  t.is((await j.read()).find((e) => e.kind === 'node')?.at, t0, 'the start is stamped with the virtual time')
  await clock.runUntil(t0 + 3_600_000)
  const later = j.record({ kind: 'operator', operator: 'op', action: 'sync' })
  t.is(later.at, t0 + 3_600_000)
  t.deepEqual((await j.read({ since: t0 + 1 })).map((e) => e.seq), [later.seq], 'an hour of virtual time separates them')
})

test.serial('journal on a virtual clock: a cut member is journaled suspect, then dead no sooner than suspectAfterMs of virtual time later', async (t) => {
  const clock = new VirtualClock(1_700_000_000_000)
  const net = memoryNetwork()
  // Forming needs messages and timers together: virtual time runs by itself meanwhile.
  const stopDriving = clock.drive({ stepMs: 5, realMs: 1 })
  let a: Node
  let j: Journal
  try {
    a = await node(t, net, clock, 'a', [])
    j = await journalOf(t, a, clock)
    const b = await node(t, net, clock, 'b', ['a:7400'])
    await waitFor(() => a.membership.table().b?.status === 'alive' && b.membership.table().a?.status === 'alive', { what: 'a and b to see each other alive' })
  } finally {
    await stopDriving()
  }
  const cutAt = clock.now()
  net.disconnect('b:7400')
  // From here only timers decide: a's probes of b fail at once, and suspicion runs on the clock.
  await clock.runUntil(cutAt + SUSPECT_MS - 1)
  const early = await j.read({ since: cutAt })
  t.is(about(early, 'b', 'dead'), undefined, `not dead within ${SUSPECT_MS - 1} ms of virtual time: ${early.map((e) => e.text).join(' | ')}`)

  await clock.runUntil(cutAt + 10 * SUSPECT_MS)
  const es = await j.read({ since: cutAt })
  const suspect = about(es, 'b', 'suspect')
  const dead = about(es, 'b', 'dead')
  t.truthy(suspect, es.map((e) => e.text).join(' | '))
  t.truthy(dead, es.map((e) => e.text).join(' | '))
  t.true(suspect!.at >= cutAt && dead!.at - cutAt >= SUSPECT_MS, `suspect ${suspect!.at - cutAt} ms, dead ${dead!.at - cutAt} ms (virtual) after the cut`)
  t.true(dead!.at <= cutAt + 10 * SUSPECT_MS)
  t.log(es.map((e) => `+${e.at - cutAt} ms ${e.text}`).join('\n'))
})
