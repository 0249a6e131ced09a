/**
 * lease-holder.ts on an in-memory lease engine with a test clock (one holder at a time,
 * grants expire after their ttl, fencing tokens grow, and it can be made to fail):
 * when the lease is taken, kept, given up, and what the node is told each round. The
 * etcd plugin itself is tested against a real etcd in test/lease.test.ts.
 */
import test from 'ava'
import { VirtualClock } from '../../node/clock/virtual'
import { silentLogger } from '../../node/log'
import type { DowningPolicy, DowningView } from '../../node/membership/downing'
import { LeaseHolder } from '../../node/membership/lease-holder'
import { singletonQuorum } from '../../node/supervisor/rolling'
import type { Acquired, Lease, LeaseGrant } from '../../node/membership/lease'
import type { Member, MemberStatus, MemberTable } from '../../node/membership/types'

class MemoryEngine {
  now = 0
  token = 0
  held: { holder: string, token: number, id: string, expiresAt: number } | undefined
  failing = false

  lease (): Lease {
    const e = this
    return {
      key: '/origin/test/downing',
      ttlMs: 3000,
      async acquire (holder, ttlMs): Promise<Acquired> {
        e.check()
        if (e.held !== undefined) return { kind: 'taken', key: this.key, holder: e.held.holder, token: e.held.token }
        e.held = { holder, token: ++e.token, id: `l${e.token}`, expiresAt: e.now + ttlMs }
        return { kind: 'granted', grant: { key: this.key, holder, token: e.held.token, id: e.held.id, ttlMs } }
      },
      async read () {
        e.check()
        return e.held === undefined ? undefined : { holder: e.held.holder, token: e.held.token }
      },
      async renew (g: LeaseGrant) {
        e.check()
        if (e.held?.id !== g.id) return false
        e.held.expiresAt = e.now + g.ttlMs
        return true
      },
      async release (g: LeaseGrant) {
        e.check()
        if (e.held?.id === g.id) e.held = undefined
      },
      async start () {},
      async stop () {}
    }
  }

  /** Time passes: a grant not renewed within its ttl is gone. */
  advance (ms: number): void {
    this.now += ms
    if (this.held !== undefined && this.now >= this.held.expiresAt) this.held = undefined
  }

  private check (): void {
    if (this.failing) throw new Error('etcd http://127.0.0.1:2379: no answer within 2000 ms')
  }
}

function table (statuses: Record<string, MemberStatus>, incarnation = 1): MemberTable {
  return Object.fromEntries(Object.entries(statuses).map(([id, status]): [string, Member] => [id, {
    id, address: `${id}:7400`, incarnation, heartbeat: 1, status, hub: false,
    characteristics: { cpus: 1, memoryMb: 1, arch: 'x64', labels: {}, startedAt: 0 }
  }]))
}

const policy: DowningPolicy = { strategy: 'lease', afterMs: 1000 }
const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve)) }

async function holderOn (engine: MemoryEngine, id: string, settleMs = 0): Promise<LeaseHolder> {
  const h = new LeaseHolder({ lease: engine.lease(), holder: id, log: silentLogger, now: () => engine.now, settleMs })
  await h.start()
  return h
}

test('lease holder: takes the lease only when the dead are to be downed, keeps it after downing them until they are back, then gives it up', async (t) => {
  const engine = new MemoryEngine()
  const b = await holderOn(engine, 'b')
  const view = (statuses: Record<string, MemberStatus>, stableForMs: number): DowningView => ({ table: table(statuses), self: 'b', stableForMs })

  b.round(view({ a: 'alive', b: 'alive' }, 1e9), policy)
  b.round(view({ a: 'dead', b: 'alive' }, 500), policy)
  await settle()
  t.is(engine.held, undefined, 'not while nobody is dead, nor before the membership is stable')

  t.like(b.round(view({ a: 'dead', b: 'alive' }, 1000), policy), { held: false })
  await settle()
  t.like(b.round(view({ a: 'dead', b: 'alive' }, 1100), policy), { held: true, key: '/origin/test/downing', token: 1 })
  b.downed(['a'])

  // a is downed (left) and stays away: b renews past many ttls.
  for (let i = 0; i < 20; i++) {
    engine.advance(500)
    t.like(b.round(view({ a: 'left', b: 'alive' }, 0), policy), { held: true, token: 1 }, `still held after ${engine.now} ms`)
    await settle()
  }
  t.is(engine.held?.holder, 'b')

  // a comes back (a new incarnation): nothing left to guard, the lease goes.
  b.round(view({ a: 'alive', b: 'alive' }, 0), policy)
  await settle()
  t.is(engine.held, undefined)
  t.like(b.fact(), { held: false })
})

test('lease holder: held by another, it says by whom and tries again; when that one lets go, it takes it with a greater token', async (t) => {
  const engine = new MemoryEngine()
  const a = await holderOn(engine, 'a')
  const b = await holderOn(engine, 'b')
  const dead = (self: string, other: string): DowningView => ({ table: table({ [self]: 'alive', [other]: 'dead' }), self, stableForMs: 5000 })
  a.round(dead('a', 'b'), policy)
  await settle()
  b.round(dead('b', 'a'), policy)
  await settle()
  t.like(b.round(dead('b', 'a'), policy), { held: false, holder: 'a', token: 1 })
  t.like(a.round(dead('a', 'b'), policy), { held: true, token: 1 })

  // a's need goes (b came back before a downed it): a releases; b, retrying, gets it.
  a.round({ table: table({ a: 'alive', b: 'alive' }), self: 'a', stableForMs: 0 }, policy)
  await settle()
  engine.advance(100)
  b.round(dead('b', 'a'), policy)
  await settle()
  t.like(b.fact(), { held: false, holder: 'a' }, 'not before its retry interval')
  engine.advance(2000)
  b.round(dead('b', 'a'), policy)
  await settle()
  t.like(b.fact(), { held: true, token: 2 })
})

test('lease holder: when renewals fail, the lease stops counting as held once its ttl has passed since the last renewal sent', async (t) => {
  const engine = new MemoryEngine()
  const b = await holderOn(engine, 'b')
  const v: DowningView = { table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 5000 }
  b.round(v, policy)
  await settle()
  t.like(b.fact(), { held: true })
  engine.failing = true
  engine.advance(1500)
  b.round(v, policy) // renewal due: it fails
  await settle()
  t.like(b.fact(), { held: true }, 'within the ttl of the grant: still held')
  engine.advance(1499)
  t.like(b.round(v, policy), { held: true })
  engine.advance(1)
  const f = b.fact()
  t.like(f, { held: false })
  t.regex(f.held ? '' : f.problem ?? '', /not renewed for its ttl of 3000 ms: renewing: etcd http:\/\/127\.0\.0\.1:2379: no answer/)
})

test('lease holder: stopping releases the lease at once', async (t) => {
  const engine = new MemoryEngine()
  const b = await holderOn(engine, 'b')
  b.round({ table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 5000 }, policy)
  await settle()
  t.is(engine.held?.holder, 'b')
  await b.stop()
  t.is(engine.held, undefined)
  t.like(b.round({ table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 5000 }, policy), { held: false }, 'stopped: it takes nothing')
  await settle()
  t.is(engine.held, undefined)
})

test('lease holder: a new grant counts only after settleMs, and a node that sees members dead or downed reads who holds the lease', async (t) => {
  const engine = new MemoryEngine()
  const b = await holderOn(engine, 'b', 1000)
  const c = await holderOn(engine, 'c')
  const v: DowningView = { table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 5000 }
  b.round(v, policy)
  await settle()
  t.is(engine.held?.holder, 'b')
  const early = b.round(v, policy)
  t.like(early, { held: false })
  t.regex(early.held ? '' : early.problem ?? '', /acquired with token 1; it counts after 1\.0 s/)
  engine.advance(1000)
  t.like(b.round(v, policy), { held: true, token: 1 })

  // c sees a downed (left) and needs nothing: it reads the lease anyway, and says b holds it.
  const cView: DowningView = { table: table({ a: 'left', b: 'alive', c: 'alive' }), self: 'c', stableForMs: 0 }
  c.round(cView, policy)
  await settle()
  t.like(c.fact(), { held: false, holder: 'b', token: 1 })
  // With nobody dead or downed, it forgets (and reads nothing).
  c.round({ table: table({ a: 'alive', b: 'alive', c: 'alive' }), self: 'c', stableForMs: 0 }, policy)
  t.deepEqual(c.fact(), { held: false, key: '/origin/test/downing' })
})

test('lease holder: a node runs no singleton while the lease is held by a member it does not see alive (the other side won it)', (t) => {
  const three = table({ a: 'dead', b: 'left', c: 'alive', d: 'alive' })
  const inTouch = new Set(['d'])
  t.true(singletonQuorum(three, 'c', inTouch, false).ok, 'c and d: 2 of 3 members not left')
  t.true(singletonQuorum(three, 'c', inTouch, false, 'd').ok, 'held by a side-mate')
  t.true(singletonQuorum(three, 'c', inTouch, false, 'c').ok, 'held by itself')
  const lost = singletonQuorum(three, 'c', inTouch, false, 'b')
  t.false(lost.ok, 'held by b, which c downed: b\'s side won the lease after c\'s side lost its holder')
  t.regex(lost.reason, /the downing lease is held by b, which this node does not see alive/)
  t.false(singletonQuorum(three, 'c', inTouch, false, 'a').ok, 'held by a, dead here: its side may be the other one')
  t.false(singletonQuorum(table({ a: 'alive', b: 'dead' }), 'a', new Set(), false).ok, 'with the lease, half of two with the lowest id is not enough')
})

test('lease holder: on the node\'s virtual clock, a renewal goes out once a third of the ttl has passed on it, and a grant not renewed stops counting once its ttl has passed there', async (t) => {
  const engine = new MemoryEngine()
  const clock = new VirtualClock(0)
  // The node gives the holder the clock it gives the membership (node/assembly.ts).
  const h = new LeaseHolder({ lease: engine.lease(), holder: 'b', log: silentLogger, settleMs: 0, clock })
  await h.start()
  const view: DowningView = { table: table({ a: 'dead', b: 'alive' }), self: 'b', stableForMs: 1e9 }
  const at = async (ms: number): Promise<void> => { await clock.runUntil(ms); engine.advance(ms - engine.now) }

  h.round(view, policy)
  await settle()
  t.like(h.round(view, policy), { held: true, token: 1 })
  t.is(engine.held?.expiresAt, 3000)
  await at(999)
  h.round(view, policy)
  await settle()
  t.is(engine.held?.expiresAt, 3000, 'no renewal before a third of the ttl (1 s) has passed on the clock')
  await at(1000)
  h.round(view, policy)
  await settle()
  t.is(engine.held?.expiresAt, 4000, 'renewed at 1 s')

  engine.failing = true
  await at(3999)
  t.like(h.round(view, policy), { held: true }, 'the last renewal, sent at 1 s, holds until 4 s')
  await settle()
  await at(4000)
  const lost = h.round(view, policy)
  t.false(lost.held)
  t.regex(lost.held ? '' : lost.problem ?? '', /^not renewed for its ttl of 3000 ms/)
})
