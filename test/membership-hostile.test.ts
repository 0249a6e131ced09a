/**
 * Membership against a hostile peer that holds the node certificate, a paused node, and a
 * node back with a wiped data dir: real node processes, real mutual TLS.
 */
import test from 'ava'
import { join, resolve } from 'node:path'
import { loadIdentity } from '../node/keys'
import type { Member, MemberTable } from '../node/membership'
import { connectTo, type Connection } from '../node/transport'
import { TestCluster, fastMembership } from './helpers/cluster'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

const procs = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs')
const characteristics = { cpus: 64, memoryMb: 1 << 20, arch: 'x64', labels: {}, startedAt: 1 }

/** A member entry as a node would gossip it. */
function fake (id: string, address: string, over: Partial<Member> = {}): Member {
  return { id, address, incarnation: Date.now(), heartbeat: 1, status: 'alive', hub: true, characteristics, ...over }
}

async function asNode (c: TestCluster, name: string): Promise<Connection> {
  const id = await loadIdentity({ keys: c.keys })
  return await connectTo(c.node(name).address, { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster })
}

/** Gossip `table` as member `evil`; the node's table in return, or the error (whose size matters). */
async function gossip (conn: Connection, table: MemberTable): Promise<MemberTable | Error> {
  const evil = fake('evil', '127.0.0.1:9')
  try {
    const reply = await conn.call<{ from?: string, table?: MemberTable }>('mesh.gossip', { from: 'evil', table: { evil, ...table } }, { timeoutMs: 20_000 })
    return typeof reply.from === 'string' && reply.table !== undefined ? reply.table : reply as MemberTable
  } catch (err) {
    return err as Error
  }
}

function ghosts (count: number, prefix: string): MemberTable {
  const out: MemberTable = {}
  for (let i = 0; i < count; i++) out[`${prefix}${i}`] = fake(`${prefix}${i}`, `127.0.0.1:${20_000 + i}`)
  return out
}

test.serial('membership: 5,000 ghosts and a poisoned incarnation from a peer with the node certificate: the singleton keeps running, the member stays alive', async (t) => {
  const s = await specDirCluster(t)
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image: { specDir: s.dir } })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.write('services/one.json', { run: { command: 'node', args: [join(procs, 'sleeper.js')] }, placement: { kind: 'singleton' }, stopGraceMs: 500 })
  const [before] = await s.waitInstances('a', 'one', 1)
  await s.c.explainFailure(async () => {
    const conns = await Promise.all(['a', 'b', 'c'].map(async (n) => await asNode(s.c, n)))
    t.teardown(() => { for (const conn of conns) conn.close() })

    // One frame of 5,000 ghosts, then frames of 990 (under the size limit), to every node.
    for (const conn of conns) {
      const big = await gossip(conn, ghosts(5000, 'g'))
      if (big instanceof Error) t.true(JSON.stringify(big).length < 4096, `an error of ${JSON.stringify(big).length} bytes`)
      for (let f = 0; f < 3; f++) {
        const frame = await gossip(conn, ghosts(990, `f${f}-`))
        t.false(frame instanceof Error, `a frame of 990 members of valid shape is answered: ${String(frame)}`)
      }
    }

    // b's entry, poisoned: an incarnation nobody can refute, a `left` b never said, and a
    // plausible raise with fields b does not have (which b itself must refute).
    const table = await gossip(conns[0], {})
    if (table instanceof Error) throw table
    const b = table.b
    for (const conn of [conns[0], conns[2]]) {
      await gossip(conn, { b: { ...b, incarnation: 1e308, status: 'left' } })
      await gossip(conn, { b: { ...b, incarnation: Number.MAX_SAFE_INTEGER, status: 'left' } })
      await gossip(conn, { b: { ...b, status: 'left', heartbeat: b.heartbeat + 1000 } })
      await gossip(conn, { b: { ...b, incarnation: b.incarnation + 5, instances: {} } })
    }

    // Every node has b alive again at an incarnation b gave itself, and only real members.
    for (const n of ['a', 'b', 'c']) {
      await waitFor(async () => {
        const view = await s.c.view(n)
        return view.b?.status === 'alive' && view.b.incarnation > b.incarnation + 5 && view.b.incarnation < b.incarnation + 100
      }, { what: `${n} to see b alive, refuted`, timeoutMs: 20_000 })
      t.deepEqual(Object.keys(await s.c.view(n)).sort(), ['a', 'b', 'c'], `${n} knows no ghost`)
    }
    // The ghosts have been tried by now (or taken in, on a node that believes hearsay).
    for (const n of ['a', 'b', 'c']) {
      await waitFor(async () => /members this node has not met|g\d+ at 127\.0\.0\.1:\d+ is (alive|dead)/.test(await s.c.node(n).log()), { what: `${n} to have heard the ghosts` })
    }
    const [after] = await s.waitInstances(before.node, 'one', 1)
    t.is(after.node, before.node, 'the singleton did not move')
    t.is(after.startedAt, before.startedAt, 'the singleton did not restart')
    for (const n of ['a', 'b', 'c']) {
      const log = await s.c.node(n).log()
      t.notRegex(log, /stopping one/, `${n} never stopped the singleton`)
      t.notRegex(log, / b is (left|dead)/, `${n} never took b for gone`)
    }
  })
})

test.serial('membership: a node paused longer than deadAfterMs does not declare the healthy ones dead when it wakes', async (t) => {
  const c = await TestCluster.create()
  t.teardown(async () => await c.cleanup())
  await c.start({ name: 'n1' })
  await c.start({ name: 'n2' })
  const n3 = await c.start({ name: 'n3' })
  await c.waitForView({ n1: 'alive', n2: 'alive', n3: 'alive' })
  await c.explainFailure(async () => {
    const stoppedAt = Date.now()
    n3.proc.signal('SIGSTOP')
    await c.waitForView({ n3: 'dead' }, { on: ['n1', 'n2'] })
    await waitFor(() => Date.now() - stoppedAt > fastMembership.deadAfterMs + 1000, { what: 'the pause to outlast deadAfterMs' })
    n3.proc.signal('SIGCONT')
    await c.waitForView({ n1: 'alive', n2: 'alive', n3: 'alive' }, { timeoutMs: 20_000 })
    for (const n of ['n1', 'n2', 'n3']) {
      t.notRegex(await c.node(n).log(), / n[12] is dead/, `${n} never reports a healthy node dead`)
    }
    await waitFor(async () => /could not watch its peers for \d+\.\d s/.test(await n3.log()), { what: 'n3 to say it was blind' })
  })
})

test.serial('membership: a node back with a wiped data dir at a dead member\'s address replaces it, which becomes left', async (t) => {
  const c = await TestCluster.create()
  t.teardown(async () => await c.cleanup())
  await c.start({ name: 'n1' })
  await c.start({ name: 'n2' })
  const n3 = await c.start({ name: 'n3' })
  await c.waitForView({ n1: 'alive', n2: 'alive', n3: 'alive' })
  await c.explainFailure(async () => {
    n3.proc.signal('SIGKILL')
    await c.waitForView({ n3: 'dead' }, { on: ['n1', 'n2'] })
    // Another image dir (so an empty data dir) and no name: a new id at n3's address.
    await c.start({ name: 'n3-wiped', address: n3.address, image: { name: undefined } })
    for (const n of ['n1', 'n2']) {
      const view = await waitFor(async () => {
        const v = await c.view(n)
        return v.n3?.status === 'left' && Object.values(v).some((r) => r.id !== 'n3' && r.address === n3.address && r.status === 'alive') ? v : undefined
      }, { what: `${n} to see n3 replaced`, timeoutMs: 20_000 })
      t.is(Object.values(view).filter((r) => r.status !== 'left').length, 3, 'the old identity no longer counts')
    }
    // The first node to meet the newcomer retires n3 itself; others may hear it from that one.
    const logs = await Promise.all(['n1', 'n2'].map(async (n) => await c.node(n).log()))
    t.true(logs.some((l) => /n3 is left \(replaced: node-\S+ answers at its address/.test(l)), 'a node says why n3 left')
  })
})
