/**
 * Property: whatever member tables a hostile peer (with a node certificate) sends, in
 * whatever order with honest gossip in between, a live member is never kept from
 * refuting (once it has gossiped itself, its own entry is what the others hold), its
 * incarnation stays a safe integer near its own, and ghosts never count in a quorum, host
 * anything or rank as a hub.
 */
import test from 'ava'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import { defaultHubPolicy } from '../../node/hubs/types'
import { selectHubs } from '../../node/hubs/rank'
import { hear, type HearLimits, type Knowledge } from '../../node/membership/hear'
import { checkFrame } from '../../node/membership/schema'
import { aliveMembers } from '../../node/membership/table'
import type { Member, MemberStatus, MemberTable } from '../../node/membership/types'
import { singletonQuorum } from '../../node/supervisor/rolling'

const limits: HearLimits = { maxMembers: 1000, incarnationSlack: 16, maxClockAheadMs: 86_400_000 }
const BASE = 1_700_000_000_000
const NOW = BASE + 60_000
const REAL = ['a', 'x', 'y']
const GHOSTS = ['g1', 'g2', 'g3']
const characteristics = { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: BASE }

function member (id: string, incarnation: number): Member {
  return { id, address: `10.0.0.${REAL.indexOf(id) + 1}:7400`, incarnation, heartbeat: 10, status: 'alive', hub: false, characteristics }
}

/** Node `me` knowing the three real members, each of which told it its incarnation itself. */
function start (me: string): Knowledge {
  const table: MemberTable = Object.fromEntries(REAL.map((id, i) => [id, member(id, BASE + i)]))
  return { self: table[me], table, direct: new Map(REAL.filter((id) => id !== me).map((id) => [id, table[id].incarnation])) }
}

const statuses: MemberStatus[] = ['alive', 'suspect', 'dead', 'left']
const SAFE = Number.MAX_SAFE_INTEGER
const incarnationArb = fc.oneof(
  fc.integer({ min: BASE - 5, max: BASE + 40 }),
  fc.integer({ min: 0, max: SAFE }),
  fc.constantFrom(0, SAFE, SAFE - 1, NOW + 86_400_000, NOW + 86_400_001)
)
const entryArb = (id: string): fc.Arbitrary<Member> => fc.record({
  id: fc.constant(id),
  address: fc.constantFrom('10.0.0.1:7400', '10.0.0.2:7400', '10.0.0.3:7400', '10.6.6.6:7400'),
  incarnation: incarnationArb,
  heartbeat: fc.oneof(fc.nat(20), fc.constant(SAFE)),
  status: fc.constantFrom(...statuses),
  hub: fc.boolean(),
  characteristics: fc.constant(characteristics),
  instances: fc.option(fc.constant({ 'one-0': { version: 'evil', state: 'ready' } }), { nil: undefined })
}, { requiredKeys: ['id', 'address', 'incarnation', 'heartbeat', 'status', 'hub', 'characteristics'], noNullPrototype: true })
const hostileTableArb: fc.Arbitrary<MemberTable> = fc.subarray([...REAL, ...GHOSTS], { minLength: 1 })
  .chain((ids) => fc.tuple(...ids.map(entryArb)))
  .map((ms) => Object.fromEntries(ms.map((m) => [m.id, m])))

type Event =
  | { kind: 'hostile', to: 'a' | 'x', table: MemberTable }
  | { kind: 'gossip', from: 'a' | 'x', to: 'a' | 'x', direct: boolean }
const eventArb: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant('hostile' as const), to: fc.constantFrom('a' as const, 'x' as const), table: hostileTableArb }),
  fc.record({ kind: fc.constant('gossip' as const), from: fc.constantFrom('a' as const, 'x' as const), to: fc.constantFrom('a' as const, 'x' as const), direct: fc.boolean() })
)

test('membership property: hostile tables never keep a live member from refuting, and ghosts never count', (t) => {
  fc.assert(fc.property(fc.array(eventArb, { maxLength: 12 }), (events) => {
    const nodes: Record<'a' | 'x', Knowledge> = { a: start('a'), x: start('x') }
    const deliver = (to: 'a' | 'x', table: MemberTable, speaker?: string): void => {
      // What crosses the wire is a copy that passed the frame check.
      const frame = checkFrame(structuredClone({ from: Object.keys(table)[0], table }), 'frame', limits.maxMembers)
      nodes[to] = hear(nodes[to], frame.table, { speaker, fresh: new Set(), now: NOW }, limits).knowledge
    }
    for (const e of events) {
      if (e.kind === 'hostile') deliver(e.to, e.table)
      else if (e.from !== e.to) deliver(e.to, nodes[e.from].table, e.direct ? e.from : undefined)
    }
    // x hears a's view (as hearsay, the worst case), then tells a about itself.
    deliver('x', nodes.a.table)
    deliver('a', nodes.x.table, 'x')
    const x = nodes.x.self
    assert.equal(x.status, 'alive')
    assert.deepStrictEqual(nodes.a.table.x, x, 'x\'s own word is what a holds')
    assert.ok(Number.isSafeInteger(x.incarnation))
    const pushes = events.length + 1
    assert.ok(x.incarnation <= NOW + limits.maxClockAheadMs + pushes * (limits.incarnationSlack + 1), `x at incarnation ${x.incarnation}`)
    for (const node of [nodes.a, nodes.x]) {
      for (const id of Object.keys(node.table)) assert.ok(REAL.includes(id), `ghost ${id} in a table`)
      for (const m of Object.values(node.table)) assert.ok(Number.isSafeInteger(m.incarnation) && Number.isSafeInteger(m.heartbeat))
      assert.ok(singletonQuorum(node.table, node.self.id, new Set(REAL)).ok, 'in touch with every real member is a majority')
      assert.ok(aliveMembers(node.table).every((m) => REAL.includes(m.id)), 'only real members host')
      assert.ok(selectHubs(node.table, defaultHubPolicy).every((id) => REAL.includes(id)), 'only real members are hubs')
    }
  }), { numRuns: 500 })
  t.pass()
})

test('membership property: a third party never raises an incarnation past the slack above what the member said itself', (t) => {
  fc.assert(fc.property(fc.array(hostileTableArb, { maxLength: 8 }), (tables) => {
    let a = start('a')
    for (const table of tables) {
      const before = a.table
      a = hear(a, table, { fresh: new Set(), now: NOW }, limits).knowledge
      for (const id of ['x', 'y']) {
        assert.ok(a.table[id].incarnation <= start('a').table[id].incarnation + limits.incarnationSlack, `${id} at ${a.table[id].incarnation}`)
        const was = before[id].status
        assert.ok(a.table[id].status !== 'left' || was === 'dead' || was === 'left', `${id} left by hearsay while ${was}`)
      }
    }
  }), { numRuns: 500 })
  t.pass()
})
