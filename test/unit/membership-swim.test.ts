/**
 * The pure parts of SWIM failure detection: the delta queue (how many times a change is
 * sent), the dynamic suspicion timeout, the probe rotation, local health and the probe
 * timeout that follows each member's round trips.
 */
import test from 'ava'
import fc from 'fast-check'
import { DeltaQueue, retransmitLimit } from '../../node/membership/broadcasts'
import { LocalHealth } from '../../node/membership/health'
import { fanoutTargets, ProbeRing } from '../../node/membership/rotation'
import { nextPeak, probeTimeout, RoundTrips } from '../../node/membership/rtt'
import { maxProbeTimeoutMs } from '../../node/membership/swim'
import { expectedTouched, fenceWindowMs } from '../../node/membership/fence'
import { membershipDefaults } from '../../node/membership/config'
import { expectedConfirmations, suspicionTimeoutMs, Suspicions } from '../../node/membership/suspicion'
import type { Member } from '../../node/membership/types'

function member (id: string, incarnation = 1, status: Member['status'] = 'alive'): Member {
  return { id, address: `${id}:7400`, incarnation, heartbeat: 0, status, hub: false, characteristics: { cpus: 1, memoryMb: 1, arch: 'x64', labels: {}, startedAt: 0 } }
}

/** A small seeded generator (the tests' randomness is an argument, as in the node). */
function seeded (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 }
}

test('deltas: a change is sent retransmitMult x ceil(log10(n + 1)) times, then leaves the queue', (t) => {
  t.is(retransmitLimit(4, 5), 4)
  t.is(retransmitLimit(4, 9), 4)
  t.is(retransmitLimit(4, 10), 8)
  t.is(retransmitLimit(4, 1000), 16)
  const q = new DeltaQueue()
  q.add(member('a'))
  const sent = Array.from({ length: 6 }, () => q.take(16, 4).length)
  t.deepEqual(sent, [1, 1, 1, 1, 0, 0])
  t.is(q.size, 0)
})

test('deltas: a newer change for a member replaces the queued one, with its count reset', (t) => {
  const q = new DeltaQueue()
  q.add(member('a', 1))
  q.take(16, 3)
  q.take(16, 3)
  q.add(member('a', 2, 'suspect'), 'b')
  t.deepEqual(q.take(16, 3), [{ e: member('a', 2, 'suspect'), by: 'b' }])
  t.is(q.take(16, 3).length, 1)
  t.is(q.take(16, 3).length, 1)
  t.is(q.take(16, 3).length, 0)
})

test('deltas: the least-sent changes go first, the newest among equals, at most `limit` a message', (t) => {
  const q = new DeltaQueue()
  q.add(member('a'))
  q.add(member('b'))
  t.deepEqual(q.take(1, 10).map((d) => d.e.id), ['b'])
  q.add(member('c'))
  t.deepEqual(q.take(2, 10).map((d) => d.e.id), ['c', 'a'])
  t.deepEqual(q.take(3, 10).map((d) => d.e.id), ['c', 'b', 'a'])
})

test('deltas: property — every change is sent exactly its limit times (or until replaced), whatever the message sizes', (t) => {
  fc.assert(fc.property(fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { minLength: 1, maxLength: 20 }), fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 200 }), fc.integer({ min: 1, max: 6 }), (ids, sizes, limit) => {
    const q = new DeltaQueue()
    const version = new Map<string, number>()
    for (const id of ids) {
      const v = (version.get(id) ?? 0) + 1
      version.set(id, v)
      q.add(member(id, v))
    }
    const count = new Map<string, number>()
    for (let i = 0; q.size > 0; i++) {
      const batch = q.take(sizes[i % sizes.length] === 0 && i > 1000 ? 1 : sizes[i % sizes.length], limit)
      if (new Set(batch.map((d) => d.e.id)).size !== batch.length) return false
      for (const d of batch) {
        if (d.e.incarnation !== version.get(d.e.id)) return false // only the latest change travels
        count.set(d.e.id, (count.get(d.e.id) ?? 0) + 1)
      }
      if (i > 10_000) return false
    }
    return [...version.keys()].every((id) => count.get(id) === limit)
  }))
  t.pass()
})

test('deltas: the queue is bounded; past it the most-sent change goes first', (t) => {
  const q = new DeltaQueue(2)
  q.add(member('a'))
  q.take(1, 10) // a sent once
  q.add(member('b'))
  q.add(member('c'))
  t.is(q.size, 2)
  t.deepEqual(q.take(10, 10).map((d) => d.e.id).sort(), ['b', 'c'])
})

test('suspicion: the timeout starts at the maximum and reaches the minimum with k confirmations, on a log scale', (t) => {
  const limits = { minMs: 600, maxMs: 2000 }
  t.is(suspicionTimeoutMs(limits, 2, 0), 2000)
  t.is(suspicionTimeoutMs(limits, 2, 1), Math.round(2000 - 1400 * Math.log(2) / Math.log(3)))
  t.is(suspicionTimeoutMs(limits, 2, 2), 600)
  t.is(suspicionTimeoutMs(limits, 2, 7), 600)
  t.is(suspicionTimeoutMs(limits, 0, 0), 600, 'no confirmation expected: the minimum at once')
  t.is(expectedConfirmations(2, 3), 0, 'in three members only one other could confirm')
  t.is(expectedConfirmations(2, 4), 2)
})

test('suspicion: property — the timeout stays within [min, max] and never grows with more confirmations', (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 20 }), (a, b, k, c) => {
    const limits = { minMs: Math.min(a, b), maxMs: Math.max(a, b) }
    const now = suspicionTimeoutMs(limits, k, c)
    const more = suspicionTimeoutMs(limits, k, c + 1)
    return now >= limits.minMs && now <= limits.maxMs && more <= now
  }))
  t.pass()
})

test('suspicion: confirmations count once per member; a newer incarnation starts afresh; blind time is not held against it', (t) => {
  const s = new Suspicions({ minMs: 600, maxMs: 2000 })
  t.true(s.suspect('x', 5, 'a', 1000, 2))
  t.is(s.deadline('x'), 3000)
  t.false(s.suspect('x', 5, 'a', 1100, 2), 'the same member again is no confirmation')
  t.false(s.suspect('x', 4, 'b', 1100, 2), 'an older incarnation is no confirmation')
  t.true(s.suspect('x', 5, 'b', 1100, 2))
  t.is(s.deadline('x'), 1000 + suspicionTimeoutMs({ minMs: 600, maxMs: 2000 }, 2, 1))
  t.true(s.suspect('x', 5, 'c', 1200, 2))
  t.is(s.deadline('x'), 1600)
  t.deepEqual(s.due(1599), [])
  t.deepEqual(s.due(1600), [{ id: 'x', incarnation: 5, confirmations: 2, heldMs: 600 }])
  s.extend(5000, 7000)
  t.is(s.deadline('x'), 6600)
  s.extend(Infinity, 7000)
  t.is(s.deadline('x'), 7600, 'the clock went backwards: a fresh period from now')
  t.true(s.suspect('x', 6, 'a', 8000, 2))
  t.is(s.deadline('x'), 10_000)
  s.clear('x')
  t.false(s.has('x'))
})

test('rotation: every eligible member is probed once per pass, in an order that differs between passes', (t) => {
  const ring = new ProbeRing(seeded(7))
  const ids = new Set(['a', 'b', 'c', 'd', 'e', 'f'])
  const passes = Array.from({ length: 4 }, () => Array.from({ length: ids.size }, () => ring.next(ids)))
  for (const p of passes) t.deepEqual([...p].sort(), [...ids].sort())
  t.true(new Set(passes.map((p) => p.join())).size > 1, 'the order is reshuffled')
})

test('rotation: property — a member that stays eligible is probed within two passes, whatever joins and leaves', (t) => {
  fc.assert(fc.property(fc.integer(), fc.array(fc.tuple(fc.boolean(), fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g')), { maxLength: 60 }), (seed, changes) => {
    const ring = new ProbeRing(seeded(seed))
    const eligible = new Set(['stay', 'a', 'b'])
    let since = 0
    for (const [join, id] of changes) {
      if (join) { eligible.add(id); ring.add(id) } else eligible.delete(id)
      const next = ring.next(eligible)
      if (next === undefined || !eligible.has(next)) return false
      since = next === 'stay' ? 0 : since + 1
      if (since > 2 * 9) return false
    }
    return true
  }))
  t.pass()
})

test('rotation: a member that joins is probed within the pass under way', (t) => {
  const ring = new ProbeRing(seeded(3))
  const ids = new Set(['a', 'b', 'c', 'd'])
  ring.next(ids)
  ids.add('new')
  ring.add('new')
  const rest = Array.from({ length: 4 }, () => ring.next(ids))
  t.true(rest.includes('new'))
  t.is(ring.next(new Set()), undefined)
})

test('local health: missed acks raise it to its bound, timely acks lower it; timeouts scale with it; blind time drops it to the worst', (t) => {
  const h = new LocalHealth({ max: 3, periodMs: 200 })
  t.is(h.scale(80), 80)
  h.raise(); h.raise(2); h.raise()
  t.is(h.value, 3)
  t.is(h.scale(80), 320)
  h.lower()
  t.is(h.value, 2)
  t.is(h.tick(0), 0)
  t.is(h.tick(200), 0)
  t.is(h.tick(600), 0, 'two periods late is still watching')
  h.lower(); h.lower()
  t.is(h.tick(5600), 4800)
  t.is(h.value, 3)
  t.is(h.tick(5000), Infinity, 'the clock went backwards')
})

test('round trips: the recent peak jumps to a higher sample and sinks by an eighth of the gap per lower one', (t) => {
  t.is(nextPeak(undefined, 40), 40)
  t.is(nextPeak(40, 100), 100)
  t.is(nextPeak(100, 20), 90)
  let peak = 100
  for (let i = 0; i < 40; i++) peak = nextPeak(peak, 2)
  t.true(peak < 3, `one slow answer is forgotten after 40 quick ones (${peak})`)
})

test('round trips: a member with no sample gets probeTimeoutMs; one that answers late gets 1.5 x its peak, bounded', (t) => {
  const o = { minMs: 80, maxMs: 400 }
  t.is(probeTimeout(o, undefined), 80)
  t.is(probeTimeout(o, 3), 80, 'a quick member keeps the configured timeout')
  t.is(probeTimeout(o, 101), 152)
  t.is(probeTimeout(o, 201), 302)
  t.is(probeTimeout(o, 5000), 400, 'a very slow history cannot delay finding a crash beyond the bound')
  t.is(probeTimeout({ minMs: 80, maxMs: 40 }, 300), 80, 'a bound below the minimum is the minimum')
})

test('round trips: property — the timeout stays within [probeTimeoutMs, max] and never falls as a sample rises', (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 0, max: 2000 }), fc.array(fc.double({ min: 0, max: 5000, noNaN: true }), { maxLength: 30 }), fc.double({ min: 0, max: 5000, noNaN: true }), (minMs, extra, samples, more) => {
    const o = { minMs, maxMs: minMs + extra }
    const r = new RoundTrips(o)
    for (const x of samples) r.record('a', x)
    const before = r.timeoutFor('a')
    r.record('a', Math.max(more, r.peak('a') ?? 0))
    const after = r.timeoutFor('a')
    return before >= minMs && before <= o.maxMs && after >= before
  }))
  t.pass()
})

test('round trips: a bad sample is ignored; members no longer probed are forgotten', (t) => {
  const r = new RoundTrips({ minMs: 80, maxMs: 400 })
  r.record('a', Number.NaN)
  r.record('a', -5)
  t.is(r.size, 0)
  r.record('a', 200)
  r.record('b', 10)
  r.keepOnly(new Set(['b']))
  t.is(r.timeoutFor('a'), 80)
  t.is(r.peak('b'), 10)
  t.is(r.size, 1)
})

test('round trips: the longest direct probe is two periods, so the verdict window stays under the three periods past which a round gives none', (t) => {
  const o = { gossipIntervalMs: 200, probeTimeoutMs: 80 }
  t.is(maxProbeTimeoutMs(o), 400)
  t.true(maxProbeTimeoutMs(o) + (o.gossipIntervalMs - o.probeTimeoutMs) < 3 * o.gossipIntervalMs)
  t.is(maxProbeTimeoutMs({ gossipIntervalMs: 20, probeTimeoutMs: 80 }), 80)
})

test('fence window: suspectAfterMs up to some 20 members, then long enough to expect half again a majority touched', (t) => {
  const o = membershipDefaults
  for (const n of [1, 2, 3, 5, 10, 20]) t.true(fenceWindowMs(o, n) <= 800, `${n} members: ${fenceWindowMs(o, n)} ms`)
  t.is(fenceWindowMs(o, 5), o.suspectAfterMs)
  t.is(fenceWindowMs(o, 50), 1800)
  t.is(fenceWindowMs(o, 100), 3600)
  const perPeriod = 2 * (1 + o.fanout)
  for (const n of [30, 50, 100, 1000]) {
    const w = fenceWindowMs(o, n)
    t.true(expectedTouched(n - 1, perPeriod * w / o.gossipIntervalMs) >= 1.5 * Math.floor(n / 2) - 1e-9, `${n} members: ${w} ms`)
    t.true(expectedTouched(n - 1, perPeriod * (w - o.gossipIntervalMs) / o.gossipIntervalMs) < 1.5 * Math.floor(n / 2), `${n} members: ${w} ms is the least that does`)
  }
  t.is(fenceWindowMs({ ...o, suspectAfterMs: 5000 }, 50), 5000, 'never below the configured minimum')
})

test('fence window: property — at least suspectAfterMs, enough contacts for half again a majority, and never shorter for a longer period', (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 20, max: 1000 }), fc.integer({ min: 0, max: 5000 }), (n, fanout, period, suspectAfterMs) => {
    const o = { gossipIntervalMs: period, fanout, suspectAfterMs }
    const w = fenceWindowMs(o, n)
    const enough = n < 3 || expectedTouched(n - 1, 2 * (1 + fanout) * Math.floor(w / period)) >= Math.min(n - 1.5, 1.5 * Math.floor(n / 2)) - 1e-6
    return w >= suspectAfterMs && enough && fenceWindowMs({ ...o, gossipIntervalMs: period + 10 }, n) >= w
  }))
  t.pass()
})

test('suspicion: a floor raises both bounds of that suspicion, so a large cluster never declares a member dead before the fence window', (t) => {
  const s = new Suspicions({ minMs: 600, maxMs: 2000 })
  s.suspect('x', 1, 'a', 0, 2, 1800)
  s.suspect('x', 1, 'b', 10, 2)
  s.suspect('x', 1, 'c', 20, 2)
  t.is(s.deadline('x'), 1800, 'two confirmations bring it to the floor, not to 600')
  s.suspect('y', 1, 'a', 0, 2, 5000)
  t.is(s.deadline('y'), 5000, 'a floor above the maximum is the timeout')
  s.suspect('z', 1, 'a', 0, 2, 100)
  t.is(s.deadline('z'), 2000, 'a floor below the minimum changes nothing')
})

test('fanout: a period pings `fanout` distinct members besides its probe, never the probed one again', (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 6 }), fc.integer(), fc.boolean(), (n, fanout, seed, probing) => {
    const peers = Array.from({ length: n }, (_, i) => member(`m${i}`))
    const probed = probing && n > 0 ? peers[Math.abs(seed) % n].id : undefined
    const targets = fanoutTargets(peers, probed, fanout, seeded(seed))
    const ids = targets.map((m) => m.id)
    t.false(probed !== undefined && ids.includes(probed))
    t.is(new Set(ids).size, ids.length)
    t.is(ids.length, Math.min(fanout, n - (probed === undefined ? 0 : 1)))
  }))
  // Three nodes: the probe goes to one peer, the pings to the other, not to both again.
  const ring = new ProbeRing(seeded(7))
  const peers = [member('b'), member('c')]
  const probed = ring.next(new Set(['b', 'c']))
  t.is(ring.last, probed)
  t.deepEqual(fanoutTargets(peers, ring.last, 3, seeded(1)).map((m) => m.id), [probed === 'b' ? 'c' : 'b'])
})
