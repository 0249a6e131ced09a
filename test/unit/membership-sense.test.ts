import test from 'ava'
import { OriginError } from '../../node/errors'
import { hear, type HearLimits, type Knowledge } from '../../node/membership/hear'
import { checkFrame, gossipPayload, MAX_ERROR_CHARS } from '../../node/membership/schema'
import type { Member, MemberTable } from '../../node/membership/types'
import { validator } from '../../node/validate'

const limits: HearLimits = { maxMembers: 1000, incarnationSlack: 16, maxClockAheadMs: 86_400_000 }
const NOW = 1_700_000_000_000

function member (id: string, over: Partial<Member> = {}): Member {
  return {
    id,
    address: `10.0.0.${id.charCodeAt(0) % 250}:7400`,
    incarnation: 1000,
    heartbeat: 5,
    status: 'alive',
    characteristics: { cpus: 2, memoryMb: 2048, arch: 'x64', labels: {}, startedAt: 1000 },
    hub: false,
    ...over
  }
}

/** Node `a` knowing itself and `b` (which told `a` its incarnation directly). */
function knowledge (over: Partial<Record<'a' | 'b', Partial<Member>>> = {}): Knowledge {
  const a = member('a', over.a)
  const b = member('b', over.b)
  return { self: a, table: { a, b }, direct: new Map([['b', b.incarnation]]) }
}

const hearsay = { fresh: new Set<string>(), now: NOW }
const tableOf = (...ms: Member[]): MemberTable => Object.fromEntries(ms.map((m) => [m.id, m]))

test('membership sense: a member heard of from a third party is not a member until it speaks for itself', (t) => {
  const k = knowledge()
  const ghost = member('g', { address: '10.9.9.9:7400' })
  const heard = hear(k, tableOf(ghost, member('h')), hearsay, limits)
  t.deepEqual(Object.keys(heard.knowledge.table).sort(), ['a', 'b'])
  t.deepEqual(heard.unknown, [{ id: 'g', address: '10.9.9.9:7400' }, { id: 'h', address: member('h').address }])
  const spoke = hear(heard.knowledge, tableOf(ghost), { ...hearsay, speaker: 'g' }, limits)
  t.deepEqual(Object.keys(spoke.knowledge.table).sort(), ['a', 'b', 'g'])
  t.is(spoke.knowledge.direct.get('g'), ghost.incarnation)
})

test('membership sense: unknown members said dead or left are not even heard of', (t) => {
  const heard = hear(knowledge(), tableOf(member('g', { status: 'dead' }), member('h', { status: 'left' })), hearsay, limits)
  t.deepEqual(heard.unknown, [])
  t.deepEqual(Object.keys(heard.knowledge.table).sort(), ['a', 'b'])
})

test('membership sense: a third party raises an incarnation only a little above what the member said itself', (t) => {
  const k = knowledge()
  const relayed = hear(k, tableOf(member('b', { incarnation: 1001 })), hearsay, limits)
  t.is(relayed.knowledge.table.b.incarnation, 1001, 'a relayed refutation (+1) is taken')
  for (const incarnation of [1000 + 17, 2 ** 52, Number.MAX_SAFE_INTEGER]) {
    const poisoned = hear(k, tableOf(member('b', { incarnation })), hearsay, limits)
    t.is(poisoned.knowledge.table.b, k.table.b, `${incarnation} is refused`)
    t.is(poisoned.refused[0].recheck, incarnation === 1017, 'b is asked directly about an incarnation it could have reached')
  }
  const own = hear(k, tableOf(member('b', { incarnation: NOW + 1000 })), { ...hearsay, speaker: 'b' }, limits)
  t.is(own.knowledge.table.b.incarnation, NOW + 1000, 'the member itself may')
})

test('membership sense: no incarnation more than two maxClockAheadMs ahead of the clock is taken, even from the member itself', (t) => {
  const k = knowledge()
  const ceiling = NOW + 2 * limits.maxClockAheadMs
  t.is(hear(k, tableOf(member('b', { incarnation: ceiling })), { ...hearsay, speaker: 'b' }, limits).knowledge.table.b.incarnation, ceiling)
  const over = hear(k, tableOf(member('b', { incarnation: ceiling + 1 })), { ...hearsay, speaker: 'b' }, limits)
  t.is(over.knowledge.table.b, k.table.b)
  t.regex(over.refused[0].reason, /no member starts or refutes that far/)
  const joiner = hear(k, tableOf(member('c', { incarnation: Number.MAX_SAFE_INTEGER })), { ...hearsay, speaker: 'c' }, limits)
  t.false('c' in joiner.knowledge.table)
})

test('membership sense: only the member itself says it left, unless it is dead here already', (t) => {
  const k = knowledge()
  const claim = member('b', { status: 'left' })
  t.is(hear(k, tableOf(claim), hearsay, limits).knowledge.table.b.status, 'alive')
  t.is(hear(k, tableOf(claim), { ...hearsay, speaker: 'b' }, limits).knowledge.table.b.status, 'left')
  const dead = knowledge({ b: { status: 'dead' } })
  t.is(hear(dead, tableOf(claim), hearsay, limits).knowledge.table.b.status, 'left', 'forgetting a dead member spreads')
})

test('membership sense: a third party changes a status only at the incarnation the entry has', (t) => {
  const k = knowledge()
  t.is(hear(k, tableOf(member('b', { status: 'suspect' })), hearsay, limits).knowledge.table.b.status, 'suspect')
  t.is(hear(k, tableOf(member('b', { status: 'dead' })), hearsay, limits).knowledge.table.b.status, 'dead')
  const higher = hear(k, tableOf(member('b', { incarnation: 1003, status: 'dead' })), hearsay, limits)
  t.is(higher.knowledge.table.b, k.table.b)
  t.regex(higher.refused[0].reason, /only at the incarnation the entry has here \(1000\)/)
})

test('membership sense: a third party\'s dead is refused while the member\'s heartbeat advanced here lately', (t) => {
  const k = knowledge()
  const verdict = tableOf(member('b', { status: 'dead' }))
  const heard = hear(k, verdict, { ...hearsay, fresh: new Set(['b']) }, limits)
  t.is(heard.knowledge.table.b.status, 'alive')
  t.false(heard.refused[0].recheck)
  t.is(hear(k, verdict, hearsay, limits).knowledge.table.b.status, 'dead', 'without fresh evidence it is taken')
})

test('membership sense: what is said of this node is bounded, and refuted', (t) => {
  const k = knowledge()
  const suspected = hear(k, tableOf(member('a', { status: 'suspect' })), hearsay, limits)
  t.is(suspected.knowledge.self.status, 'alive')
  t.is(suspected.knowledge.self.incarnation, 1001)
  t.is(suspected.knowledge.table.a, suspected.knowledge.self)
  const absurd = hear(k, tableOf(member('a', { status: 'left', incarnation: Number.MAX_SAFE_INTEGER })), hearsay, limits)
  t.is(absurd.knowledge.self, k.self, 'an absurd incarnation about me is not even refuted')
  t.is(absurd.refused.length, 1)
  const earlierRun = hear(k, tableOf(member('a', { incarnation: NOW - 5000 })), hearsay, limits)
  t.is(earlierRun.knowledge.self.incarnation, NOW - 4999, 'a plausible timestamp (an earlier run of my id) is outbid')
})

test('membership sense: the table does not grow past maxMembers', (t) => {
  const k = knowledge()
  const small = { ...limits, maxMembers: 3 }
  const one = hear(k, tableOf(member('c')), { ...hearsay, speaker: 'c' }, small)
  t.is(Object.keys(one.knowledge.table).length, 3)
  const two = hear(one.knowledge, tableOf(member('d')), { ...hearsay, speaker: 'd' }, small)
  t.is(Object.keys(two.knowledge.table).length, 3)
  t.regex(two.refused[0].reason, /table is full/)
})

test('membership sense: an entry keyed by another member\'s id is refused, in the frame check and in hear', (t) => {
  const frame = { from: 'h', table: { h: member('h'), x: member('a') } }
  const err = t.throws(() => checkFrame(frame, 'payload of mesh.gossip', 1000), { instanceOf: OriginError })
  t.is(err?.code, 'E_PAYLOAD_INVALID')
  t.regex(err?.message ?? '', /keyed "x" but is member "a"/)
  const heard = hear(knowledge(), { x: member('a', { status: 'left', incarnation: 5000 }) } as MemberTable, hearsay, limits)
  t.is(heard.knowledge.self.status, 'alive')
  t.false('x' in heard.knowledge.table)
})

test('membership sense: incarnations and heartbeats are safe integers', (t) => {
  for (const bad of [1e308, Number.MAX_SAFE_INTEGER + 2, -1, 1.5]) {
    const frame = { from: 'h', table: { h: member('h'), b: member('b', { incarnation: bad, status: 'left' }) } }
    t.throws(() => checkFrame(frame, 'payload of mesh.gossip', 1000), { instanceOf: OriginError }, String(bad))
    t.throws(() => checkFrame({ from: 'h', table: { h: member('h', { heartbeat: bad }) } }, 'x', 1000), undefined, `heartbeat ${bad}`)
  }
  t.notThrows(() => checkFrame({ from: 'h', table: { h: member('h', { incarnation: Number.MAX_SAFE_INTEGER }) } }, 'x', 1000))
})

test('membership sense: the sender must be in its own table', (t) => {
  t.throws(() => checkFrame({ from: 'h', table: { b: member('b') } }, 'payload of mesh.gossip', 1000), { message: /sender "h" is not in its own table/ })
})

test('membership sense: a frame of 9,000 invalid members gets a short error, from both checks', (t) => {
  const table: Record<string, unknown> = {}
  for (let i = 0; i < 9000; i++) table[`m${i}`] = { id: `m${i}`, junk: 'x'.repeat(100) }
  const payload = { from: 'm0', table }
  const transportCheck = validator(gossipPayload(1000), 'payload of mesh.gossip')
  const e1 = t.throws(() => transportCheck(payload), { instanceOf: OriginError })
  t.true(JSON.stringify(e1).length < 2000, `transport check error is ${JSON.stringify(e1).length} bytes`)
  const small = { from: 'm0', table: Object.fromEntries(Object.entries(table).slice(0, 999)) }
  t.notThrows(() => transportCheck(small), 'under the size limit the transport check passes')
  const e2 = t.throws(() => checkFrame(small, 'payload of mesh.gossip', 1000), { instanceOf: OriginError })
  t.true(e2!.message.length <= MAX_ERROR_CHARS)
  t.true(JSON.stringify(e2).length < 2000, `frame check error is ${JSON.stringify(e2).length} bytes`)
})

test('membership sense: an unknown property name from a peer is clipped in the error', (t) => {
  const frame = { from: 'h', table: { h: { ...member('h'), ['y'.repeat(100_000)]: 1 } } }
  const e = t.throws(() => checkFrame(frame, 'payload of mesh.gossip', 1000), { instanceOf: OriginError })
  t.true(JSON.stringify(e).length < 2000)
})
