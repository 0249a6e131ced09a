/**
 * What operators and apps are told about unhealthy members and about the instances of
 * suspect and dead ones: the pure mappings, the journal's entries, the REPL's table.
 */
import test from 'ava'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { inspect } from 'node:util'
import os from 'node:os'
import { join } from 'node:path'
import type { Member, MemberStatus, MemberTable, MembershipEvents } from '../../node/membership/types'
import { readyTargets } from '../../node/proxy/choose'
import { instanceState } from '../../node/vocabulary'
import { readyInstances, whereInstances } from '../../node/api/views'
import { onMember } from '../../node/control/services'
import { journal, replay, type JournalEvent } from '../../node/journal'
import { silentLogger } from '../../node/log'
import type { NodeRow } from '../../node/control'
import { NodeTable } from '../../repl/render'
import { checkFrame } from '../../node/membership/schema'

function member (id: string, status: MemberStatus, instances: Record<string, string> = {}, unhealthy?: string): Member {
  return {
    id,
    address: `10.0.0.${id.length}:7400`,
    incarnation: 1,
    heartbeat: 1,
    status,
    hub: false,
    characteristics: { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: 0, ...(unhealthy === undefined ? {} : { unhealthy }) },
    instances: Object.fromEntries(Object.entries(instances).map(([i, s], n) => [i, { version: 'v1', state: s, address: `10.0.0.${n + 1}:${3000 + n}` }]))
  }
}

const table = (...ms: Member[]): MemberTable => Object.fromEntries(ms.map((m) => [m.id, m]))

test('instances of a suspect member are unknown, of a dead one lost, and only ready ones on alive members count as ready', (t) => {
  t.is(instanceState('alive', 'ready'), 'ready')
  t.is(instanceState('alive', 'starting'), 'starting')
  t.is(instanceState('suspect', 'ready'), 'unknown')
  t.is(instanceState('dead', 'ready'), 'lost')
  t.is(instanceState('left', 'ready'), 'lost')
  const t1 = table(member('a', 'alive', { 'web-0': 'ready' }), member('bb', 'suspect', { 'web-1': 'ready' }), member('ccc', 'dead', { 'web-2': 'ready' }), member('dddd', 'alive', { 'web-3': 'starting' }))
  t.deepEqual(readyTargets(t1, 'web').map((x) => x.instance), ['web-0'])
  t.deepEqual(readyInstances(t1, 'web').map((x) => x.instance), ['web-0'])
  t.deepEqual(whereInstances(t1, 'web').map((x) => `${x.instance} ${x.node} ${x.state}`), ['web-0 a ready', 'web-1 bb unknown', 'web-2 ccc lost', 'web-3 dddd starting'])
  t.deepEqual(whereInstances(table(member('a', 'left', { 'web-0': 'ready' })), 'web'), [], 'a member gone for good is not listed')
})

test('services view: an instance on a suspect or dead node says why it is unknown or lost', (t) => {
  t.deepEqual(onMember({ id: 'n3', status: 'suspect' }, 'ready', 2600), { state: 'unknown', reason: 'node n3 is suspect for 2.6 s: not heard from, so it may have stopped; it last said ready' })
  t.deepEqual(onMember({ id: 'n3', status: 'dead' }, 'ready', undefined), { state: 'lost', reason: 'node n3 is dead: the instance is lost and starts elsewhere; it last said ready' })
  t.is(onMember({ id: 'n3', status: 'alive' }, 'starting', 100).state, 'starting')
})

test('the gossip schema accepts a reason a node gives for being unhealthy, up to its bound', (t) => {
  const entry = (unhealthy: string): unknown => ({ from: 'a', table: { a: member('a', 'alive', {}, unhealthy) } })
  t.notThrows(() => checkFrame(entry('data dir has 80 MiB free (floor 256 MiB)'), 'test', 10))
  t.throws(() => checkFrame(entry('x'.repeat(301)), 'test', 10), { message: /unhealthy/ })
  t.throws(() => checkFrame(entry(''), 'test', 10), { message: /unhealthy/ })
})

test('journal: every node records a member saying it is unhealthy and why, and healthy again; replay keeps the reason', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-health-journal-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  let current = table(member('a', 'alive'), member('n2', 'alive'))
  const membership = { id: 'a', events: new EventEmitter<MembershipEvents>(), table: () => current }
  const j = journal({ dataDir: dir })({ membership, hubs: { events: new EventEmitter() }, spec: { events: new EventEmitter() }, supervisor: { events: new EventEmitter() }, log: silentLogger })
  await j.start()
  const say = (m: Member): void => { current = { ...current, [m.id]: m }; membership.events.emit('change', current) }
  say(member('n2', 'alive', {}, 'data dir has 80 MiB free (floor 256 MiB)'))
  say({ ...member('n2', 'alive', {}, 'data dir has 80 MiB free (floor 256 MiB)'), heartbeat: 2 })
  say(member('n2', 'alive'))
  say(member('n2', 'alive', {}, 'event loop delayed 2.3 s (bound 1 s)'))
  await j.stop()
  const events = await j.read()
  t.deepEqual(events.filter((e) => e.kind === 'health').map((e) => e.text), [
    'n2 unhealthy: data dir has 80 MiB free (floor 256 MiB)',
    'n2 healthy again (was: data dir has 80 MiB free (floor 256 MiB))',
    'n2 unhealthy: event loop delayed 2.3 s (bound 1 s)'
  ])
  const last = events.at(-1) as JournalEvent
  t.is(replay(events, last.at).members.n2?.unhealthy, 'event loop delayed 2.3 s (bound 1 s)')
  const healthy = events.find((e) => e.kind === 'health' && e.unhealthy === undefined) as JournalEvent
  t.is(replay(events.filter((e) => e.seq <= healthy.seq), last.at).members.n2?.unhealthy, undefined)
})

test('cluster.nodes(): an unhealthy node says so in its status and why under the table', (t) => {
  const row = (id: string, unhealthy?: string): NodeRow => ({ id, address: `${id}:7400`, status: 'alive', hub: false, cpus: 2, memoryMb: 2048, arch: 'x64', labels: {}, startedAt: 0, incarnation: 1, ...(unhealthy === undefined ? {} : { unhealthy }) })
  const text = inspect(NodeTable.fromRows([row('n1'), row('n2', 'data dir has 80 MiB free (floor 256 MiB)')]))
  t.regex(text, /^n2 +n2:7400 +alive, unhealthy /m)
  t.regex(text, /^n2 unhealthy: data dir has 80 MiB free \(floor 256 MiB\) \(its singletons move to healthy nodes\)$/m)
  t.notRegex(text, /^n1 unhealthy/m)
})

test('apps and operators agree: an instance is listed ready by /v1/services exactly when /v1/where says ready, whatever its member\'s status', (t) => {
  const arb = fc.array(fc.record({
    status: fc.constantFrom<MemberStatus>('alive', 'suspect', 'dead', 'left'),
    states: fc.array(fc.constantFrom('ready', 'starting', 'unhealthy', 'stopped'), { maxLength: 3 })
  }), { minLength: 1, maxLength: 6 })
  fc.assert(fc.property(arb, (ms) => {
    const tbl = table(...ms.map((m, i) => member(`n${i}`, m.status, Object.fromEntries(m.states.map((s, j) => [`web-${i * 3 + j}`, s])))))
    const ready = readyInstances(tbl, 'web').map((x) => `${x.node}/${x.instance}`)
    const where = whereInstances(tbl, 'web')
    assert.deepStrictEqual(ready, where.filter((x) => x.state === 'ready').map((x) => `${x.node}/${x.instance}`))
    for (const x of where) {
      const status = tbl[x.node].status
      if (status === 'suspect') assert.equal(x.state, 'unknown')
      if (status === 'dead') assert.equal(x.state, 'lost')
      assert.notEqual(status, 'left')
    }
  }))
  t.pass()
})
