import test from 'ava'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import type { Member, MemberStatus, MemberTable } from '../../node/membership/types'
import { defaultHubPolicy, type HubPolicy, type RankKey } from '../../node/hubs/types'
import { clearlyBeats, hubsChanged, rankMembers, selectHubs } from '../../node/hubs/rank'

interface Spec { memoryMb?: number, cpus?: number, startedAt?: number, status?: MemberStatus, hub?: boolean }

function member (id: string, s: Spec = {}): Member {
  return {
    id,
    address: `${id}:7000`,
    incarnation: 1,
    heartbeat: 1,
    status: s.status ?? 'alive',
    characteristics: {
      cpus: s.cpus ?? 4, memoryMb: s.memoryMb ?? 8000, arch: 'x64', labels: {}, startedAt: s.startedAt ?? 100
    },
    hub: s.hub ?? false
  }
}

function tableOf (...members: Member[]): MemberTable {
  return Object.fromEntries(members.map((m) => [m.id, m]))
}

/** The table every member would gossip after setting its own `hub` flag from `hubs`. */
function withFlags (table: MemberTable, hubs: string[]): MemberTable {
  return Object.fromEntries(Object.entries(table).map(([id, m]) => [id, { ...m, hub: hubs.includes(id) }]))
}

const policy = defaultHubPolicy

test('hubs: the default ranking is more memory, then more cpus, then longer uptime, then id', (t) => {
  const ranked = rankMembers([
    member('e', { memoryMb: 8000, cpus: 4, startedAt: 100 }),
    member('d', { memoryMb: 8000, cpus: 4, startedAt: 100 }),
    member('c', { memoryMb: 8000, cpus: 4, startedAt: 50 }),
    member('b', { memoryMb: 8000, cpus: 8, startedAt: 900 }),
    member('a', { memoryMb: 16000, cpus: 1, startedAt: 900 })
  ], policy)
  t.deepEqual(ranked.map((m) => m.id), ['a', 'b', 'c', 'd', 'e'])
})

test('hubs: a ranking without id still orders members with equal keys by id', (t) => {
  const ranked = rankMembers([member('b'), member('c'), member('a')], { ...policy, ranking: ['cpus'] })
  t.deepEqual(ranked.map((m) => m.id), ['a', 'b', 'c'])
})

test('hubs: with fewer members than the count, all of them are hubs, strongest first', (t) => {
  const table = tableOf(member('a', { memoryMb: 1000 }), member('b', { memoryMb: 2000 }))
  t.deepEqual(selectHubs(table, policy), ['b', 'a'])
})

test('hubs: dead and left members are never hubs, suspect ones keep their seat', (t) => {
  const table = tableOf(
    member('a', { memoryMb: 64000, status: 'dead', hub: true }),
    member('b', { memoryMb: 64000, status: 'left' }),
    member('c', { memoryMb: 1000, status: 'suspect', hub: true }),
    member('d', { memoryMb: 1000 }),
    member('e', { memoryMb: 1000 }),
    member('f', { memoryMb: 1000 })
  )
  t.deepEqual(selectHubs(table, policy), ['c', 'd', 'e'])
})

test('hubs: a newcomer with memory beyond the margin displaces exactly the weakest hub', (t) => {
  const hubs = tableOf(
    member('a', { memoryMb: 8000, hub: true }),
    member('b', { memoryMb: 6000, hub: true }),
    member('c', { memoryMb: 4000, hub: true }),
    member('d', { memoryMb: 2000 })
  )
  const table = { ...hubs, n: member('n', { memoryMb: 4500 }) } // 4500 > 4000 * 1.1
  const next = selectHubs(table, policy)
  t.deepEqual(next, ['a', 'b', 'n'])
  t.deepEqual(hubsChanged(['a', 'b', 'c'], next), { promoted: ['n'], demoted: ['c'] })
})

test('hubs: a newcomer within the margin displaces no one, though it ranks higher', (t) => {
  const table = tableOf(
    member('a', { memoryMb: 8000, hub: true }),
    member('b', { memoryMb: 6000, hub: true }),
    member('c', { memoryMb: 4000, hub: true }),
    member('n', { memoryMb: 4400 }) // 4400 <= 4000 * 1.1, and cpus are equal
  )
  t.is(rankMembers(Object.values(table), policy)[2].id, 'n')
  t.deepEqual(selectHubs(table, policy), ['a', 'b', 'c'])
})

test('hubs: within the memory margin, more cpus displace a hub that ranks lower', (t) => {
  const table = tableOf(
    member('a', { memoryMb: 8000, hub: true }),
    member('b', { memoryMb: 6000, hub: true }),
    member('c', { memoryMb: 4000, cpus: 2, hub: true }),
    member('n', { memoryMb: 4000, cpus: 8 })
  )
  t.deepEqual(selectHubs(table, policy), ['a', 'b', 'n'])
})

test('hubs: more cpus do not displace a hub with more memory within the margin', (t) => {
  const hub = member('c', { memoryMb: 4200, cpus: 2, hub: true })
  const challenger = member('n', { memoryMb: 4000, cpus: 8 })
  t.false(clearlyBeats(challenger, hub, policy), 'n ranks below c, so it does not take its seat')
  const table = tableOf(member('a', { memoryMb: 8000, hub: true }), member('b', { memoryMb: 6000, hub: true }), hub, challenger)
  t.deepEqual(selectHubs(table, policy), ['a', 'b', 'c'])
})

test('hubs: uptime and id never decide for a challenger', (t) => {
  const hub = member('z', { startedAt: 500 })
  t.false(clearlyBeats(member('a', { startedAt: 1 }), hub, policy))
})

test('hubs: when a hub dies the best non-hub is promoted', (t) => {
  const table = tableOf(
    member('a', { memoryMb: 8000, hub: true }),
    member('b', { memoryMb: 6000, hub: true, status: 'dead' }),
    member('c', { memoryMb: 4000, hub: true }),
    member('d', { memoryMb: 2000 }),
    member('e', { memoryMb: 3000 })
  )
  const next = selectHubs(table, policy)
  t.deepEqual(next, ['a', 'c', 'e'])
  t.deepEqual(hubsChanged(['a', 'b', 'c'], next), { promoted: ['e'], demoted: ['b'] })
})

// Memories around the 10 % margin, so comparisons land on both sides of it.
const statuses: MemberStatus[] = ['alive', 'alive', 'suspect', 'dead', 'left']
const tableArb: fc.Arbitrary<MemberTable> = fc.uniqueArray(fc.record({
  id: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'),
  memoryMb: fc.constantFrom(1000, 1050, 1100, 1150, 1500, 4000),
  cpus: fc.integer({ min: 1, max: 4 }),
  startedAt: fc.nat(3),
  status: fc.constantFrom(...statuses),
  hub: fc.boolean()
}), { selector: (s) => s.id, maxLength: 8 }).map((specs) => tableOf(...specs.map((s) => member(s.id, s))))
const keys: RankKey[] = ['memory', 'cpus', 'uptime', 'id']
const policyArb: fc.Arbitrary<HubPolicy> = fc.record({
  count: fc.integer({ min: 0, max: 5 }),
  ranking: fc.shuffledSubarray(keys),
  memoryMargin: fc.constantFrom(0, 0.05, 0.1, 0.5)
})
const eligible = (table: MemberTable): string[] =>
  Object.values(table).filter((m) => m.status === 'alive' || m.status === 'suspect').map((m) => m.id)

test('hubs: the same table gives the same hubs whatever its key order', (t) => {
  const arb = tableArb.chain((table) =>
    fc.tuple(fc.constant(table), fc.shuffledSubarray(Object.entries(table), { minLength: Object.keys(table).length })))
  fc.assert(fc.property(arb, policyArb, ([table, entries], p) => {
    assert.deepStrictEqual(selectHubs(Object.fromEntries(entries), p), selectHubs(table, p))
  }), { numRuns: 500 })
  t.pass()
})

test('hubs: there are min(count, eligible) hubs, all eligible, strongest first', (t) => {
  fc.assert(fc.property(tableArb, policyArb, (table, p) => {
    const hubs = selectHubs(table, p)
    const ok = eligible(table)
    assert.equal(hubs.length, Math.min(p.count, ok.length))
    assert.ok(hubs.every((id) => ok.includes(id)))
    assert.equal(new Set(hubs).size, hubs.length)
    assert.deepStrictEqual(rankMembers(hubs.map((id) => table[id]), p).map((m) => m.id), hubs)
  }), { numRuns: 1000 })
  t.pass()
})

test('hubs: selection is a fixed point of its own flags (no flapping)', (t) => {
  fc.assert(fc.property(tableArb, policyArb, (table, p) => {
    const hubs = selectHubs(table, p)
    assert.deepStrictEqual(selectHubs(withFlags(table, hubs), p), hubs)
  }), { numRuns: 2000 })
  t.pass()
})
