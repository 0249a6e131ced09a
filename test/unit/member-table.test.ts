import test from 'ava'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import type { Member, MemberStatus, MemberTable } from '../../node/membership/types'
import {
  aliveMembers, changedIds, compareEntries, countByStatus, markStatus, mergeMember, mergeTables, refute, replacementOf, retireReplaced
} from '../../node/membership/table'

function member (id: string, over: Partial<Member> = {}): Member {
  return {
    id,
    address: `10.0.0.1:${7000 + id.charCodeAt(0)}`,
    incarnation: 1,
    heartbeat: 1,
    status: 'alive',
    characteristics: { cpus: 2, memoryMb: 2048, arch: 'x64', labels: {}, startedAt: 1000 },
    hub: false,
    ...over
  }
}

// Small alphabets so ids collide and entries tie on (incarnation, status, heartbeat).
const statuses: MemberStatus[] = ['alive', 'suspect', 'dead', 'left']
const memberArb = (ids = ['a', 'b', 'c']): fc.Arbitrary<Member> => fc.record({
  id: fc.constantFrom(...ids),
  address: fc.constantFrom('h1:7000', 'h2:7000'),
  incarnation: fc.nat(2),
  heartbeat: fc.nat(2),
  status: fc.constantFrom(...statuses),
  characteristics: fc.record({
    cpus: fc.integer({ min: 1, max: 2 }),
    memoryMb: fc.constantFrom(1024, 2048),
    arch: fc.constantFrom('x64', 'arm64'),
    labels: fc.dictionary(fc.constantFrom('zone', 'disk'), fc.constantFrom('a', 'b'), { noNullPrototype: true }),
    startedAt: fc.nat(1)
  }, { noNullPrototype: true }),
  hub: fc.boolean()
}, { noNullPrototype: true }) // plain objects, as they come off the wire
const tableArb: fc.Arbitrary<MemberTable> = fc.array(memberArb())
  .map((ms) => Object.fromEntries(ms.map((m) => [m.id, m])))

function deepFreeze<T> (v: T): T {
  if (v !== null && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x)
    Object.freeze(v)
  }
  return v
}

test('member table: a higher incarnation wins, even alive over dead', (t) => {
  const dead = member('a', { incarnation: 1, status: 'dead', heartbeat: 9 })
  const alive = member('a', { incarnation: 2, status: 'alive', heartbeat: 0 })
  t.is(mergeMember(dead, alive), alive)
  t.is(mergeMember(alive, dead), alive)
})

test('member table: at one incarnation suspect beats alive, dead beats suspect, left beats dead', (t) => {
  const order: MemberStatus[] = ['alive', 'suspect', 'dead', 'left']
  for (let i = 1; i < order.length; i++) {
    const lower = member('a', { status: order[i - 1], heartbeat: 5 })
    const higher = member('a', { status: order[i], heartbeat: 1 })
    t.is(mergeMember(lower, higher), higher, `${order[i]} over ${order[i - 1]}`)
    t.is(mergeMember(higher, lower), higher, `${order[i]} over ${order[i - 1]}`)
  }
})

test('member table: at one incarnation and status the higher heartbeat wins', (t) => {
  const old = member('a', { heartbeat: 3 })
  const fresh = member('a', { heartbeat: 4, address: '10.0.0.9:7000' })
  t.is(mergeMember(old, fresh), fresh)
  t.is(mergeMember(fresh, old), fresh)
})

test('member table: entries equal on the version still merge the same either way', (t) => {
  const x = member('a', { hub: true })
  const y = member('a', { hub: false })
  t.is(mergeMember(x, y), mergeMember(y, x))
  t.is(compareEntries(x, { ...x }), 0)
})

test('member table: merge keeps ids from both sides', (t) => {
  const merged = mergeTables({ a: member('a') }, { b: member('b') })
  t.deepEqual(Object.keys(merged), ['a', 'b'])
})

test('member table: an id like __proto__ is an ordinary key', (t) => {
  const wire = JSON.parse(`{"__proto__": ${JSON.stringify(member('__proto__'))}}`) as MemberTable
  const merged = mergeTables({}, wire)
  t.deepEqual(Object.keys(merged), ['__proto__'])
  t.is(Object.getPrototypeOf(merged), Object.prototype)
  t.is(markStatus(merged, '__proto__', 'dead')['__proto__'].status, 'dead')
})

test('member table: refute makes a suspected live member win the merge about itself', (t) => {
  const self = member('a', { incarnation: 3, heartbeat: 10 })
  const suspected = markStatus({ a: self }, 'a', 'suspect')
  t.is(mergeMember(self, suspected.a), suspected.a, 'the suspicion wins before the refutation')
  const refuted = refute(self, suspected.a)
  t.is(refuted.status, 'alive')
  t.is(refuted.incarnation, 4)
  t.is(mergeTables(suspected, { a: refuted }).a, refuted)
})

test('member table: refute outbids an entry from an earlier run by speaking at the next incarnation', (t) => {
  const self = member('a', { incarnation: 1, heartbeat: 0 })
  const remembered = member('a', { incarnation: 5, heartbeat: 40, address: 'old:7000' })
  const refuted = refute(self, remembered)
  t.is(refuted.incarnation, 6)
  t.is(refuted.heartbeat, 0, 'its own heartbeat')
  t.is(refuted.address, self.address, 'its own fields')
  t.is(mergeMember(remembered, refuted), refuted)
})

test('member table: a heartbeat planted at the member\'s incarnation is refuted by incarnation, not matched', (t) => {
  const self = member('a', { incarnation: 7, heartbeat: 3 })
  const planted = { ...self, heartbeat: Number.MAX_SAFE_INTEGER, instances: {} }
  const refuted = refute(self, planted)
  t.is(refuted.incarnation, 8)
  t.is(refuted.heartbeat, 3)
  t.true(Number.isSafeInteger(refuted.heartbeat))
  t.is(mergeMember(planted, refuted), refuted)
})

test('member table: a member that left keeps saying so when it outbids an entry', (t) => {
  const self = member('a', { incarnation: 2, status: 'left' })
  const refuted = refute(self, member('a', { incarnation: 4, status: 'alive' }))
  t.is(refuted.status, 'left')
  t.is(refuted.incarnation, 5)
})

test('member table: a dead member whose address a new id answers at is retired as left', (t) => {
  const old = member('a', { address: 'h1:7400', status: 'dead' })
  const fresh = member('z', { address: 'h1:7400' })
  const other = member('b', { address: 'h2:7400', status: 'dead' })
  const table = { a: old, b: other, z: fresh }
  const retired = retireReplaced(table)
  t.is(retired.a.status, 'left')
  t.is(retired.a.incarnation, old.incarnation)
  t.is(retired.b.status, 'dead', 'a dead member nobody replaced stays dead')
  t.is(replacementOf(retired, retired.a)?.id, 'z')
  t.is(retireReplaced(retired), retired, 'nothing more to do: the same table')
  t.is(table.a.status, 'dead', 'the input is not mutated')
})

test('member table: a live member at an address another id claims is not retired', (t) => {
  const table = { a: member('a', { address: 'h1:7400', status: 'suspect' }), z: member('z', { address: 'h1:7400' }) }
  t.is(retireReplaced(table), table)
  const dead = { a: member('a', { address: 'h1:7400', status: 'dead' }), z: member('z', { address: 'h1:7400', status: 'suspect' }) }
  t.is(retireReplaced(dead), dead, 'the successor must be alive')
})

test('member table: refute leaves a member alone when the cluster agrees with it', (t) => {
  const self = member('a', { incarnation: 2, heartbeat: 5 })
  t.is(refute(self, undefined), self)
  t.is(refute(self, { ...self }), self)
  t.is(refute(self, member('a', { incarnation: 1, status: 'dead' })), self)
})

test('member table: markStatus only raises a status, at the same incarnation', (t) => {
  const table = { a: member('a'), b: member('b', { status: 'left' }) }
  const suspected = markStatus(table, 'a', 'suspect')
  t.is(suspected.a.status, 'suspect')
  t.is(suspected.a.incarnation, table.a.incarnation)
  t.is(table.a.status, 'alive', 'the input is not mutated')
  t.is(markStatus(suspected, 'a', 'suspect'), suspected)
  t.is(markStatus(markStatus(suspected, 'a', 'dead'), 'a', 'suspect').a.status, 'dead')
  t.is(markStatus(table, 'b', 'dead'), table, 'left stays left')
  t.is(markStatus(table, 'zz', 'dead'), table, 'an unknown id changes nothing')
})

test('member table: changedIds lists new and replaced entries, sorted', (t) => {
  const before = { a: member('a'), b: member('b') }
  const after = mergeTables(before, { c: member('c'), b: member('b', { heartbeat: 2 }), a: { ...before.a } })
  t.deepEqual(changedIds(before, after), ['b', 'c'])
  t.deepEqual(changedIds(after, after), [])
})

test('member table: aliveMembers is sorted by id and countByStatus counts every status', (t) => {
  const table = { c: member('c'), a: member('a'), b: member('b', { status: 'dead' }) }
  t.deepEqual(aliveMembers(table).map((m) => m.id), ['a', 'c'])
  t.deepEqual(countByStatus(table), { alive: 2, suspect: 0, dead: 1, left: 0 })
})

test('member table: compareEntries is a total order (antisymmetric, transitive, 0 only for equal data)', (t) => {
  const sameId = memberArb(['a'])
  fc.assert(fc.property(sameId, sameId, sameId, (x, y, z) => {
    const xy = Math.sign(compareEntries(x, y))
    if (xy !== -Math.sign(compareEntries(y, x))) return false
    if ((xy === 0) !== (JSON.stringify(sortKeys(x)) === JSON.stringify(sortKeys(y)))) return false
    if (xy <= 0 && compareEntries(y, z) <= 0 && compareEntries(x, z) > 0) return false
    return true
  }), { numRuns: 2000 })
  t.pass()
})

test('member table: merge is commutative', (t) => {
  fc.assert(fc.property(tableArb, tableArb, (a, b) => {
    assert.deepStrictEqual(mergeTables(a, b), mergeTables(b, a))
  }), { numRuns: 500 })
  t.pass()
})

test('member table: merge is associative', (t) => {
  fc.assert(fc.property(tableArb, tableArb, tableArb, (a, b, c) => {
    assert.deepStrictEqual(mergeTables(mergeTables(a, b), c), mergeTables(a, mergeTables(b, c)))
  }), { numRuns: 500 })
  t.pass()
})

test('member table: merge is idempotent', (t) => {
  fc.assert(fc.property(tableArb, tableArb, (a, b) => {
    assert.deepStrictEqual(mergeTables(a, a), a)
    const ab = mergeTables(a, b)
    assert.deepStrictEqual(mergeTables(ab, b), ab)
  }), { numRuns: 500 })
  t.pass()
})

test('member table: the order tables are merged in does not matter', (t) => {
  const tablesAndOrder = fc.array(tableArb, { maxLength: 6 }).chain((tables) =>
    fc.tuple(fc.constant(tables), fc.shuffledSubarray(tables, { minLength: tables.length })))
  fc.assert(fc.property(tablesAndOrder, ([tables, shuffled]) => {
    assert.deepStrictEqual(shuffled.reduce(mergeTables, {}), tables.reduce(mergeTables, {}))
  }), { numRuns: 300 })
  t.pass()
})

test('member table: merge, markStatus and refute never mutate their inputs', (t) => {
  fc.assert(fc.property(tableArb, tableArb, memberArb(), (a, b, m) => {
    const copies = structuredClone([a, b, m])
    deepFreeze([a, b, m]) // a write to a frozen object throws in strict mode
    mergeTables(a, b)
    changedIds(a, b)
    markStatus(a, m.id, 'suspect')
    refute(m, a[m.id])
    assert.deepStrictEqual([a, b, m], copies)
  }), { numRuns: 300 })
  t.pass()
})

test('member table: a live member that refutes what it sees always wins the merge about itself', (t) => {
  const sameId = memberArb(['a'])
  fc.assert(fc.property(sameId, sameId, (self, seen) => {
    const me = refute({ ...self, status: 'alive' }, seen)
    assert.equal(me.status, 'alive')
    assert.deepStrictEqual(mergeMember(seen, me), me)
    assert.ok(me.incarnation >= self.incarnation)
  }), { numRuns: 1000 })
  t.pass()
})

function sortKeys (v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]))
  }
  return v
}
