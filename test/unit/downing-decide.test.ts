/** The downing rules (node/membership/downing.ts), case by case. */
import test from 'ava'
import { decideDowning, needsLease, type DowningPolicy } from '../../node/membership/downing'
import type { Member, MemberStatus, MemberTable } from '../../node/membership/types'

function table (statuses: Record<string, MemberStatus>, startedAt: Record<string, number> = {}): MemberTable {
  return Object.fromEntries(Object.entries(statuses).map(([id, status]): [string, Member] => [id, {
    id, address: `${id}:7400`, incarnation: 1, heartbeat: 1, status, hub: false,
    characteristics: { cpus: 1, memoryMb: 1, arch: 'x64', labels: {}, startedAt: startedAt[id] ?? 0 }
  }]))
}
const majority: DowningPolicy = { strategy: 'keep-majority', afterMs: 1000 }

test('downing: nothing to do while no member is dead', (t) => {
  t.deepEqual(decideDowning({ table: table({ a: 'alive', b: 'alive', c: 'left' }), self: 'a', stableForMs: 1e9 }, majority), { kind: 'none' })
})

test('downing: waits while a member is suspect, and until the membership has been stable for afterMs', (t) => {
  t.is(decideDowning({ table: table({ a: 'alive', b: 'suspect', c: 'dead' }), self: 'a', stableForMs: 1e9 }, majority).kind, 'wait')
  t.is(decideDowning({ table: table({ a: 'alive', b: 'alive', c: 'dead' }), self: 'a', stableForMs: 999 }, majority).kind, 'wait')
})

test('downing: keep-majority downs the dead from a majority, or from half with the lowest id, and holds otherwise', (t) => {
  const d = decideDowning({ table: table({ a: 'alive', b: 'alive', c: 'dead' }), self: 'a', stableForMs: 1000 }, majority)
  t.like(d, { kind: 'down', ids: ['c'] })
  t.like(decideDowning({ table: table({ a: 'alive', b: 'dead', c: 'left' }), self: 'a', stableForMs: 1000 }, majority), { kind: 'down', ids: ['b'] })
  t.is(decideDowning({ table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 1000 }, majority).kind, 'hold')
  t.is(decideDowning({ table: table({ a: 'alive', b: 'dead', c: 'dead' }), self: 'a', stableForMs: 1000 }, majority).kind, 'hold')
})

test('downing: static-quorum downs from a side with the quorum, and never when two sides could both reach it', (t) => {
  const q2: DowningPolicy = { strategy: 'static-quorum', afterMs: 0, quorum: 2 }
  t.like(decideDowning({ table: table({ a: 'alive', b: 'alive', c: 'dead' }), self: 'a', stableForMs: 0 }, q2), { kind: 'down', ids: ['c'] })
  t.is(decideDowning({ table: table({ a: 'alive', b: 'dead', c: 'dead' }), self: 'a', stableForMs: 0 }, q2).kind, 'hold')
  const big = decideDowning({ table: table({ a: 'alive', b: 'alive', c: 'dead', d: 'dead' }), self: 'a', stableForMs: 0 }, q2)
  t.is(big.kind, 'hold')
  t.regex((big as { reason: string }).reason, /too many for a quorum of 2/)
})

test('downing: keep-oldest downs from the side with the oldest member', (t) => {
  const oldest: DowningPolicy = { strategy: 'keep-oldest', afterMs: 0 }
  const started = { a: 30, b: 10, c: 20 }
  t.like(decideDowning({ table: table({ a: 'dead', b: 'alive', c: 'dead' }, started), self: 'b', stableForMs: 0 }, oldest), { kind: 'down', ids: ['a', 'c'] })
  t.is(decideDowning({ table: table({ a: 'alive', b: 'dead', c: 'alive' }, started), self: 'a', stableForMs: 0 }, oldest).kind, 'hold')
})

test('downing: lease downs only while this node holds the lease, and says who holds it otherwise', (t) => {
  const lease: DowningPolicy = { strategy: 'lease', afterMs: 0 }
  const two = table({ a: 'dead', b: 'alive' })
  const key = '/origin/demo/downing'
  const down = decideDowning({ table: two, self: 'b', stableForMs: 0, lease: { held: true, key, token: 42 } }, lease)
  t.like(down, { kind: 'down', ids: ['a'] })
  t.regex((down as { reason: string }).reason, /^lease: this node holds \/origin\/demo\/downing, token 42/)
  const held = decideDowning({ table: two, self: 'b', stableForMs: 0, lease: { held: false, key, holder: 'a', token: 41 } }, lease)
  t.like(held, { kind: 'hold' })
  t.regex((held as { reason: string }).reason, /^lease: held by a \(\/origin\/demo\/downing, token 41\); a stay dead/)
  t.regex((decideDowning({ table: two, self: 'b', stableForMs: 0, lease: { held: false, key, problem: 'etcd down' } }, lease) as { reason: string }).reason, /not held \(etcd down\)/)
  t.regex((decideDowning({ table: two, self: 'b', stableForMs: 0 }, lease) as { reason: string }).reason, /no lease plugin on this node \(image\.json layers\.lease\)/)
  // A majority without the lease holds too: the lease alone decides.
  t.is(decideDowning({ table: table({ a: 'alive', b: 'alive', c: 'dead' }), self: 'a', stableForMs: 0, lease: { held: false, key } }, lease).kind, 'hold')
  // And the lease does not hurry a decision: unstable or suspect, it waits.
  t.is(decideDowning({ table: table({ a: 'alive', b: 'suspect', c: 'dead' }), self: 'a', stableForMs: 1e9, lease: { held: true, key, token: 1 } }, { strategy: 'lease', afterMs: 0 }).kind, 'wait')
})

test('downing: needsLease is true exactly when the lease is all that stands between this node and downing', (t) => {
  const lease: DowningPolicy = { strategy: 'lease', afterMs: 1000 }
  t.true(needsLease({ table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 1000 }, lease))
  t.false(needsLease({ table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 999 }, lease), 'not stable long enough')
  t.false(needsLease({ table: table({ a: 'suspect', b: 'alive' }), self: 'b', stableForMs: 1e9 }, lease), 'nobody dead')
  t.false(needsLease({ table: table({ a: 'alive', b: 'alive' }), self: 'b', stableForMs: 1e9 }, lease))
  t.false(needsLease({ table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 1e9 }, majority), 'another strategy needs no lease')
})
