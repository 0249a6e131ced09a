/**
 * The state layer across real transports (mutual TLS websockets, msgpack frames) in one
 * process. Membership is a test double: one member table the test writes, as gossip would
 * spread it, so who is alive and which generation each member publishes is exact.
 */
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { OriginError } from '../node/errors'
import { loadIdentity } from '../node/keys'
import { silentLogger } from '../node/log'
import type { InstanceSummary, Member, MemberStatus, MemberTable, MembershipEvents } from '../node/membership'
import type { StateSpec } from '../node/desired/types'
import { copyHolders, state, type StateLayer } from '../node/state'
import { fetchPayload, holdingsPayload } from '../node/state/wire'
import { webSocketTransport, type Method, type Transport } from '../node/transport'
import { makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

type Identity = { ca: string, cert: string, key: string, cluster: string }
let keysDir = ''
let identity: Identity

test.before(async () => {
  keysDir = await mkdtemp(join(os.tmpdir(), 'origin-state-keys-'))
  await makeKeys(keysDir, 'test')
  const id = await loadIdentity({ keys: keysDir })
  identity = { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
})
test.after.always(async () => { if (keysDir !== '') await rm(keysDir, { recursive: true, force: true }) })

/** One member table for the whole test cluster, as every node would see it once gossip settled. */
class Table {
  readonly members: MemberTable = {}
  readonly views: Array<{ id: string, events: EventEmitter<MembershipEvents>, table: () => MemberTable }> = []

  view (id: string): { id: string, events: EventEmitter<MembershipEvents>, table: () => MemberTable } {
    const v = { id, events: new EventEmitter<MembershipEvents>(), table: () => this.members }
    this.views.push(v)
    return v
  }

  add (id: string, address: string): void {
    this.members[id] = { id, address, incarnation: 1, heartbeat: 1, status: 'alive', hub: false, characteristics: { cpus: 1, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: 0 } }
    this.changed()
  }

  status (id: string, status: MemberStatus): void { this.members[id] = { ...this.members[id], status }; this.changed() }

  /** What the supervisor of `id` would publish: the instances it runs, with their generations. */
  runs (id: string, instances: Record<string, number>): void {
    const out: Record<string, InstanceSummary> = {}
    for (const [i, g] of Object.entries(instances)) out[i] = { version: 'v1', state: 'ready', generation: g } as InstanceSummary
    this.members[id] = { ...this.members[id], instances: out } as Member
    this.changed()
  }

  private changed (): void { for (const v of this.views) v.events.emit('change', this.members) }
}

interface TestNode { id: string, data: string, transport: Transport, state: StateLayer }

const fast = { askTimeoutMs: 2000, pollMs: 50, sourceWaitMs: 10_000, persistDelayMs: 20 }

async function tempDir (t: ExecutionContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), prefix))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** A node: a started transport on loopback, a member of `table`, and its state layer. */
async function node (t: ExecutionContext, table: Table, id: string, o: { data?: string, methods?: Method[], withState?: boolean } = {}): Promise<TestNode> {
  const transport = webSocketTransport({ listen: '127.0.0.1:0', callTimeoutMs: 5000 })({ identity, log: silentLogger })
  for (const m of o.methods ?? []) transport.handle(m)
  await transport.start()
  table.add(id, transport.address)
  const data = o.data ?? await tempDir(t, `origin-state-${id}-`)
  const layer = state({ dataDir: data, ...fast })({ transport, membership: table.view(id), log: silentLogger })
  if (o.withState !== false) await layer.start()
  t.teardown(async () => { await layer.stop(); await transport.stop() })
  return { id, data, transport, state: layer }
}

const hookEnv = (dir: string): { cwd: string, env: Record<string, string> } => ({ cwd: dir, env: { ORIGIN_STATE_DIR: dir } })

test.serial('state: a replicated directory with a 10 MB file reaches `copies` nodes and is restored on another node after a failover', async (t) => {
  const table = new Table()
  const [a, b, c, d] = [await node(t, table, 'a'), await node(t, table, 'b'), await node(t, table, 'c'), await node(t, table, 'd')]
  const spec: StateSpec = { mode: 'replicate', copies: 2, intervalMs: 3_600_000, before: { command: 'sh', args: ['-c', 'echo consistent > "$ORIGIN_STATE_DIR/dump.rdb"'] } }
  const first = await a.state.prepare('redis-0', spec)
  t.like(first, { generation: 1, outcome: 'empty', note: 'starts empty (first start, generation 1)' })
  const big = randomBytes(10 * 1024 * 1024)
  await writeFile(join(first.dir, 'data.bin'), big)
  await mkdir(join(first.dir, 'sub'))
  await symlink('../data.bin', join(first.dir, 'sub', 'link'))
  table.runs('a', { 'redis-0': first.generation })
  a.state.attach('redis-0', spec, hookEnv(first.dir))
  await a.state.snapshotNow('redis-0')

  const holders = copyHolders('redis-0', ['b', 'c', 'd'], 2)
  const status = await a.state.status('redis-0')
  t.deepEqual(status?.snapshot?.copies.map((x) => [x.node, x.ok, x.stored]), holders.map((h) => [h, true, true]))
  t.is(status?.snapshot?.bytes, big.length + 'consistent\n'.length)
  t.is(status?.lastError, undefined)
  const byId = { b, c, d }
  for (const h of holders) t.like(await byId[h as 'b' | 'c' | 'd'].state.status('redis-0'), { held: { generation: 1, source: 'a', bytes: big.length + 11 } })

  // Failover: a dies; the node that holds no copy starts the instance and pulls the freshest snapshot over the mesh.
  await a.transport.stop()
  table.status('a', 'dead')
  const other = byId[(['b', 'c', 'd'] as const).find((x) => !holders.includes(x)) ?? 'd']
  const restored = await other.state.prepare('redis-0', spec)
  t.like(restored, { generation: 2, outcome: 'restored', from: { kind: 'copy', generation: 1 } })
  t.true(holders.includes(restored.from?.node ?? ''))
  t.regex(restored.note, /^restored the snapshot of generation 1 from [bcd], taken \d+(\.\d)? (ms|s) ago; now generation 2$/)
  t.is(restored.transfer?.bytes, big.length + 11)
  t.true((await readFile(join(restored.dir, 'data.bin'))).equals(big), 'the 10 MB file arrived whole') // not deepEqual: ava diffs 10 MB slowly
  t.is(await readFile(join(restored.dir, 'dump.rdb'), 'utf8'), 'consistent\n', 'the before hook ran before the copy')
  t.is(await readlink(join(restored.dir, 'sub', 'link')), '../data.bin')
  t.like(await other.state.status('redis-0'), { generation: 2, note: restored.note })
})

test.serial('state: migrate copies the directory to the new node once the old one stopped, and a fail-back moves the stale one aside', async (t) => {
  const table = new Table()
  const [a, b] = [await node(t, table, 'a'), await node(t, table, 'b')]
  const spec: StateSpec = { mode: 'migrate' }
  const onA = await a.state.prepare('web-0', spec)
  await writeFile(join(onA.dir, 'written-on-a'), 'one')
  table.runs('a', { 'web-0': onA.generation })
  a.state.attach('web-0', spec, hookEnv(onA.dir))

  // b is assigned the instance while a still runs it: b waits for a to stop, then copies.
  const moving = b.state.prepare('web-0', spec)
  await a.state.detach('web-0', { graceful: true })
  table.runs('a', {})
  const onB = await moving
  t.like(onB, { generation: 2, outcome: 'restored', from: { node: 'a', kind: 'live', generation: 1 } })
  t.regex(onB.note, /^copied the directory of generation 1 from a \(stopped \d+(\.\d)? (ms|s) ago\); now generation 2$/)
  t.is(await readFile(join(onB.dir, 'written-on-a'), 'utf8'), 'one')
  await writeFile(join(onB.dir, 'written-on-b'), 'two')
  table.runs('b', { 'web-0': onB.generation })
  b.state.attach('web-0', spec, hookEnv(onB.dir))
  await b.state.detach('web-0', { graceful: true })
  table.runs('b', {})

  // Fail-back: a's directory (generation 1) is stale; it is moved aside, never used silently, and b's comes over.
  const back = await a.state.prepare('web-0', spec)
  t.like(back, { generation: 3, outcome: 'restored', from: { node: 'b', kind: 'live', generation: 2 } })
  t.truthy(back.movedAside)
  t.regex(back.note, /^moved the stale directory of generation 1 aside to state\/web-0\.stale-g1-\d{8}T\d{6}Z; copied the directory of generation 2 from b/)
  t.is(await readFile(join(back.dir, 'written-on-b'), 'utf8'), 'two')
  t.deepEqual((await readdir(back.movedAside ?? '')).sort(), ['written-on-a'])

  // A restart of the instance in place keeps what it has.
  t.like(await a.state.prepare('web-0', spec), { generation: 3, outcome: 'kept', note: 'kept (generation 3)' })
})

test.serial('state: migrate does not copy a directory still in use without a hook; it says so and changes nothing', async (t) => {
  const table = new Table()
  const [a, b] = [await node(t, table, 'a'), await node(t, table, 'b', { withState: false })]
  const spec: StateSpec = { mode: 'migrate' }
  const onA = await a.state.prepare('web-1', spec)
  a.state.attach('web-1', spec, hookEnv(onA.dir))
  const slow = state({ dataDir: b.data, ...fast, sourceWaitMs: 200 })({ transport: b.transport, membership: table.view('b'), log: silentLogger })
  await slow.start()
  t.teardown(async () => { await slow.stop() })
  const err = await t.throwsAsync(slow.prepare('web-1', spec))
  t.is((err as OriginError).code, 'E_NOT_READY')
  t.regex(err?.message ?? '', /still in use on a and the service has no before hook/)
  t.deepEqual(await readdir(join(b.data, 'state')), ['.meta'])
})

/** A node whose state methods claim generation 5 and send a stream that breaks halfway. */
function brokenMethods (id: string): Method[] {
  return [
    { kind: 'unary', name: 'state.holdings', role: 'node', payload: holdingsPayload, handler: () => ({ node: id, live: { generation: 5, ageMs: 10, running: false, hook: false }, copy: { generation: 5, ageMs: 10, takenAt: Date.now(), source: id } }) },
    {
      kind: 'stream',
      name: 'state.fetch',
      role: 'node',
      payload: fetchPayload,
      handler: async function * () {
        yield { k: 'head', v: 1, generation: 5, takenAt: Date.now(), ageMs: 0, mode: 0o700 }
        yield { k: 'file', p: 'data.bin', m: 0o644, t: 0 }
        yield { k: 'data', d: Buffer.alloc(1000, 7) }
        throw new OriginError('E_CLOSED', 'the disk went away')
      }
    }
  ]
}

test.serial('state: a failed transfer keeps the old contents, for a copy and for an instance directory', async (t) => {
  const table = new Table()
  const [a, b] = [await node(t, table, 'a'), await node(t, table, 'b')]
  const spec: StateSpec = { mode: 'replicate', copies: 1, intervalMs: 3_600_000 }
  const p = await a.state.prepare('db-0', spec)
  await writeFile(join(p.dir, 'v'), 'version one')
  a.state.attach('db-0', spec, hookEnv(p.dir))
  await a.state.snapshotNow('db-0')
  t.like(await b.state.status('db-0'), { held: { generation: 1 } })
  const mine = await b.state.prepare('db-1', { mode: 'migrate' })
  await writeFile(join(mine.dir, 'v'), 'b keeps this')

  // x says it holds generation 5 of everything, and every transfer from it breaks halfway.
  await node(t, table, 'x', { methods: brokenMethods('x'), withState: false })
  const conn = await a.transport.peer(table.members.b.address)
  const err = await t.throwsAsync(conn.call('state.offer', { instance: 'db-0', from: 'x', generation: 5, takenAt: Date.now() }))
  t.regex(err?.message ?? '', /the disk went away/)
  t.like(await b.state.status('db-0'), { held: { generation: 1, source: 'a' } })
  const copies = join(b.data, 'state-copies', 'db-0')
  const held = await readdir(copies)
  t.is(held.length, 1, 'no half-written snapshot beside the old one')
  t.is(await readFile(join(copies, held[0], 'data', 'v'), 'utf8'), 'version one')

  // b's own directory of generation 1 is stale next to x's 5, and the copy from x fails: nothing changes, b tries later.
  const bad = await t.throwsAsync(b.state.prepare('db-1', { mode: 'migrate' }))
  t.is((bad as OriginError).code, 'E_UNREACHABLE')
  t.regex(bad?.message ?? '', /^db-1: could not copy its state \(live on x: .*the disk went away\); nothing changed, try again later$/)
  t.deepEqual((await readdir(join(b.data, 'state'))).sort(), ['.meta', 'db-1'], 'no temp dir, nothing moved aside')
  t.is(await readFile(join(mine.dir, 'v'), 'utf8'), 'b keeps this')
  t.is(b.state.generation('db-1'), 1)
})

test.serial('state: a restarted node still knows, from what gossip said before, that its directory is stale', async (t) => {
  const table = new Table()
  const a = await node(t, table, 'a')
  const first = await a.state.prepare('q-0', undefined)
  await writeFile(join(first.dir, 'old'), 'pre-crash')
  // While a runs, gossip says another node ran q-0 as generation 2; that node is gone since.
  table.add('b', '127.0.0.1:1')
  table.runs('b', { 'q-0': 2 })
  table.status('b', 'dead')
  await a.state.stop()
  await waitFor(async () => (await readFile(join(a.data, 'state', '.meta', 'seen.json'), 'utf8').catch(() => '')).includes('"q-0"'))

  await mkdir(join(a.data, 'state', '.tmp-interrupted'))
  const fresh = new Table()
  // The same data dir, a new layer (a's transport already serves the first one's methods).
  const again = state({ dataDir: a.data, ...fast })({ transport: { handle: () => {}, peer: async (x) => await a.transport.peer(x) }, membership: fresh.view('a'), log: silentLogger })
  await again.start()
  t.teardown(async () => { await again.stop() })
  const p = await again.prepare('q-0', undefined)
  t.like(p, { generation: 3, outcome: 'empty' })
  t.regex(p.note, /^moved the stale directory of generation 1 aside to state\/q-0\.stale-g1-.*; starts empty: the state of generation 2 stayed on b \(mode local\); now generation 3$/)
  t.is(await readFile(join(p.movedAside ?? '', 'old'), 'utf8'), 'pre-crash')
  t.deepEqual(await readdir(p.dir), [])
  t.false((await readdir(join(a.data, 'state'))).includes('.tmp-interrupted'), 'a transfer a crash interrupted is cleaned up at start')
})

test.serial('state: a failing before hook skips the snapshot and says so; the copies keep the last good one', async (t) => {
  const table = new Table()
  const [a, b] = [await node(t, table, 'a'), await node(t, table, 'b')]
  const good: StateSpec = { mode: 'replicate', copies: 1, intervalMs: 3_600_000 }
  const p = await a.state.prepare('cache-0', good)
  await writeFile(join(p.dir, 'v'), 'one')
  a.state.attach('cache-0', good, hookEnv(p.dir))
  await a.state.snapshotNow('cache-0')
  await a.state.detach('cache-0', { graceful: false })
  const failing: StateSpec = { ...good, before: { command: 'sh', args: ['-c', 'echo cannot save >&2; exit 3'] } }
  t.like(await a.state.prepare('cache-0', failing), { outcome: 'kept', generation: 1 })
  await writeFile(join(p.dir, 'v'), 'two')
  a.state.attach('cache-0', failing, hookEnv(p.dir))
  await a.state.snapshotNow('cache-0')
  t.is((await a.state.status('cache-0'))?.lastError, 'snapshot skipped: before hook "sh -c echo cannot save >&2; exit 3" exited with code 3: cannot save')
  const copies = join(b.data, 'state-copies', 'cache-0')
  const held = await readdir(copies)
  t.is(await readFile(join(copies, held[0], 'data', 'v'), 'utf8'), 'one')
})
