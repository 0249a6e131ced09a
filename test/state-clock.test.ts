/**
 * The state layer on a virtual clock: nodes in this process on the memory transport, their
 * state layers and transports on one VirtualClock. As in state.test.ts, membership is one
 * member table the test writes (who is alive, who runs what, exactly), so the only timers
 * are the state layer's own: a replicated instance's snapshot comes when virtual time
 * passes its interval, the generations seen are written after the persist delay, and a
 * move waits `sourceWaitMs` of virtual time for the old node to stop.
 */
import test, { type ExecutionContext } from 'ava'
import { EventEmitter } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../node/clock/virtual'
import { OriginError } from '../node/errors'
import { loadIdentity } from '../node/keys'
import { silentLogger } from '../node/log'
import type { InstanceSummary, Member, MemberTable, MembershipEvents } from '../node/membership'
import type { StateSpec } from '../node/desired/types'
import { state, type StateLayer } from '../node/state'
import { StatePaths } from '../node/state/paths'
import type { Transport } from '../node/transport'
import { memoryNetwork, type MemoryNetwork } from '../plugins/transport-memory'
import { makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

let keys = ''
test.before(async () => { keys = await makeKeys(await mkdtemp(join(os.tmpdir(), 'origin-state-clock-keys-')), 'test') })
test.after.always(async () => { if (keys !== '') await rm(keys, { recursive: true, force: true }) })

/** One member table for the test cluster, as every node would see it once gossip settled. */
class Table {
  readonly members: MemberTable = {}
  private readonly emitters: Array<EventEmitter<MembershipEvents>> = []

  view (id: string): { id: string, events: EventEmitter<MembershipEvents>, table: () => MemberTable } {
    const events = new EventEmitter<MembershipEvents>()
    this.emitters.push(events)
    return { id, events, table: () => this.members }
  }

  add (id: string, address: string): void {
    this.members[id] = { id, address, incarnation: 1, heartbeat: 1, status: 'alive', hub: false, characteristics: { cpus: 1, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: 0 } }
    this.changed()
  }

  /** What the supervisor of `id` would publish: the instances it runs, with their generations. */
  runs (id: string, instances: Record<string, number>): void {
    const out: Record<string, InstanceSummary> = {}
    for (const [i, g] of Object.entries(instances)) out[i] = { version: 'v1', state: 'ready', generation: g } as InstanceSummary
    this.members[id] = { ...this.members[id], instances: out } as Member
    this.changed()
  }

  /** How `id` is seen, as a view that has not caught up would (it still answers). */
  mark (id: string, status: Member['status']): void {
    this.members[id] = { ...this.members[id], status }
    this.changed()
  }

  private changed (): void { for (const e of this.emitters) e.emit('change', this.members) }
}

interface TestNode { id: string, data: string, state: StateLayer }
interface Cluster { clock: VirtualClock, net: MemoryNetwork, table: Table }

const settings = { askTimeoutMs: 2000, pollMs: 250, sourceWaitMs: 10_000, persistDelayMs: 500 }

function cluster (): Cluster {
  return { clock: new VirtualClock(1_700_000_000_000), net: memoryNetwork(), table: new Table() }
}

async function node (t: ExecutionContext, c: Cluster, id: string, o: Partial<typeof settings> = {}): Promise<TestNode> {
  const ident = await loadIdentity({ keys })
  const identity = { ca: ident.ca, cert: ident.cert, key: ident.key, cluster: ident.info.cluster }
  const transport: Transport = c.net.transport({ listen: `${id}:7400` })({ identity, log: silentLogger, clock: c.clock })
  await transport.start()
  c.table.add(id, transport.address)
  const data = await mkdtemp(join(os.tmpdir(), `origin-state-clock-${id}-`))
  const layer = state({ dataDir: data, ...settings, ...o })({ transport, membership: c.table.view(id), log: silentLogger, clock: c.clock })
  await layer.start()
  t.teardown(async () => { await layer.stop(); await transport.stop(); await rm(data, { recursive: true, force: true }) })
  return { id, data, state: layer }
}

const hookEnv = (dir: string): { cwd: string, env: Record<string, string> } => ({ cwd: dir, env: { ORIGIN_STATE_DIR: dir } })

test.serial('state on a virtual clock: a replicated instance is snapshotted when virtual time passes its interval, not before', async (t) => {
  const c = cluster()
  const [a, b] = [await node(t, c, 'a'), await node(t, c, 'b')]
  const spec: StateSpec = { mode: 'replicate', copies: 1, intervalMs: 60_000 }
  const p = await a.state.prepare('kv-0', spec)
  await writeFile(join(p.dir, 'data'), 'v1')
  c.table.runs('a', { 'kv-0': p.generation })
  const attachedAt = c.clock.now()
  a.state.attach('kv-0', spec, hookEnv(p.dir))

  await c.clock.runUntil(attachedAt + 59_999)
  t.is((await a.state.status('kv-0'))?.snapshot, undefined, 'no snapshot within the interval')
  t.is(await b.state.status('kv-0'), undefined, 'and no copy on b')

  await c.clock.runUntil(attachedAt + 60_000)
  const snap = await waitFor(async () => (await a.state.status('kv-0'))?.snapshot?.copies[0]?.ok === true ? (await a.state.status('kv-0'))?.snapshot : undefined, { what: 'the first snapshot copied to b' })
  t.is(snap.takenAt, attachedAt + 60_000, 'taken at the virtual time its interval ended')
  t.like(await b.state.status('kv-0'), { held: { generation: 1, source: 'a', ageMs: 0 } })
  // The copy's age is virtual too: ten virtual seconds later it is ten seconds old.
  await c.clock.runUntil(attachedAt + 70_000)
  t.like(await b.state.status('kv-0'), { held: { ageMs: 10_000 } })
  await a.state.detach('kv-0', { graceful: false })
})

test.serial('state on a virtual clock: the generations other members publish are written after the persist delay of virtual time', async (t) => {
  const c = cluster()
  // A minute: far longer than this test waits in real time, so only virtual time can end it.
  const persistDelayMs = 60_000
  const [a] = [await node(t, c, 'a', { persistDelayMs }), await node(t, c, 'b')]
  const seenFile = new StatePaths(a.data).seenFile
  const seen = async (): Promise<unknown> => JSON.parse(await readFile(seenFile, 'utf8').catch(() => '{}'))
  const at = c.clock.now()
  c.table.runs('b', { 'kv-0': 3 })
  await c.clock.runUntil(at + persistDelayMs - 1)
  t.deepEqual(await seen(), {}, 'not written within the delay')
  await c.clock.runUntil(at + persistDelayMs)
  await waitFor(async () => (await seen() as Record<string, { generation?: number }>)['kv-0']?.generation === 3, { what: 'seen.json to hold generation 3 of kv-0' })
  t.deepEqual(await seen(), { 'kv-0': { generation: 3, node: 'b' } })
})

test.serial('state on a virtual clock: a move waits sourceWaitMs of virtual time for the instance to stop on the old node', async (t) => {
  const c = cluster()
  const [a, b] = [await node(t, c, 'a'), await node(t, c, 'b')]
  const spec: StateSpec = { mode: 'migrate' }
  const onA = await a.state.prepare('web-0', spec)
  c.table.runs('a', { 'web-0': onA.generation })
  a.state.attach('web-0', spec, hookEnv(onA.dir))

  const startedAt = c.clock.now()
  const realStart = Date.now()
  const moving = b.state.prepare('web-0', spec)
  moving.catch(() => {})
  // Asking a what it holds is a real call between polls: virtual time runs by itself meanwhile.
  const stopDriving = c.clock.drive({ stepMs: 50, realMs: 1 })
  let failed: unknown
  try {
    failed = await moving.then(() => undefined, (err: unknown) => err)
  } finally {
    await stopDriving()
  }
  t.true(failed instanceof OriginError && failed.code === 'E_NOT_READY', String(failed))
  t.regex(String((failed as Error).message), /still in use on a and the service has no before hook/)
  const waited = c.clock.now() - startedAt
  t.true(waited >= settings.sourceWaitMs, `gave up after ${waited} ms of virtual time`)
  t.true(Date.now() - realStart < settings.sourceWaitMs, `in ${Date.now() - realStart} ms of real time`)
  await a.state.detach('web-0', { graceful: true })
})

test.serial('state on a virtual clock: a singleton running on another node is not started beside it, even in mode local', async (t) => {
  const c = cluster()
  const [a, b] = [await node(t, c, 'a'), await node(t, c, 'b')]
  const spec: StateSpec = { mode: 'local' }
  const onA = await a.state.prepare('single-0', spec)
  c.table.runs('a', { 'single-0': onA.generation })
  a.state.attach('single-0', spec, hookEnv(onA.dir))

  // b, with a view that has not caught up (a partition just healed), is told to start it.
  const startedAt = c.clock.now()
  const twice = b.state.prepare('single-0', spec, { once: true })
  twice.catch(() => {})
  const stopDriving = c.clock.drive({ stepMs: 50, realMs: 1 })
  let failed: unknown
  try {
    failed = await twice.then(() => undefined, (err: unknown) => err)
  } finally {
    await stopDriving()
  }
  t.true(failed instanceof OriginError && failed.code === 'E_NOT_READY', String(failed))
  t.regex(String((failed as Error).message), /single-0: still runs on a \(its directory of generation 1 is in use there\)/)
  t.true(c.clock.now() - startedAt >= settings.sourceWaitMs)

  // Once it stops on a, b starts it (empty: mode local leaves the state on a), a generation on.
  const moving = b.state.prepare('single-0', spec, { once: true })
  moving.catch(() => {})
  await a.state.detach('single-0', { graceful: true })
  const drive = c.clock.drive({ stepMs: 50, realMs: 1 })
  try {
    const onB = await moving
    t.is(onB.generation, 2)
    t.is(onB.outcome, 'empty')
  } finally {
    await drive()
  }
})

test.serial('state on a virtual clock: a singleton is not started while the member that ran it last still runs it, even if the table says it is dead', async (t) => {
  const c = cluster()
  const [a, b] = [await node(t, c, 'a'), await node(t, c, 'b')]
  const spec: StateSpec = { mode: 'local' }
  const onA = await a.state.prepare('single-0', spec)
  c.table.runs('a', { 'single-0': onA.generation })
  a.state.attach('single-0', spec, hookEnv(onA.dir))
  c.table.mark('a', 'dead')

  const twice = b.state.prepare('single-0', spec, { once: true })
  twice.catch(() => {})
  const stopDriving = c.clock.drive({ stepMs: 50, realMs: 1 })
  let failed: unknown
  try {
    failed = await twice.then(() => undefined, (err: unknown) => err)
  } finally {
    await stopDriving()
  }
  t.true(failed instanceof OriginError && failed.code === 'E_NOT_READY', String(failed))
  t.regex(String((failed as Error).message), /single-0: still runs on a/)
  // A replica is not held back by a member the table says is dead.
  t.like(await b.state.prepare('single-0', spec), { generation: 2, outcome: 'empty' })
  await a.state.detach('single-0', { graceful: true })
})
