import test from 'ava'
import { FailureDetector } from '../../node/membership/detector'
import { Probes } from '../../node/membership/probes'
import type { Member, MemberTable } from '../../node/membership/types'

const o = { suspectAfterMs: 1000, deadAfterMs: 2000, intervalMs: 100 }

function member (id: string, heartbeat: number): Member {
  return { id, address: `${id}:7400`, incarnation: 1, heartbeat, status: 'alive', hub: false, characteristics: { cpus: 1, memoryMb: 1, arch: 'x64', labels: {}, startedAt: 0 } }
}
const table = (hb: number): MemberTable => ({ a: member('a', hb), b: member('b', hb), c: member('c', hb) })

/** Rounds every 100 ms from `from` to `to` (inclusive), peers' heartbeats frozen; the last verdicts. */
function rounds (d: FailureDetector, t: MemberTable, from: number, to: number): ReturnType<FailureDetector['verdicts']> {
  let last = d.verdicts(t, 'a', from)
  for (let now = from + 100; now <= to; now += 100) last = d.verdicts(t, 'a', now)
  return last
}

test('detector: members silent while this node watched are suspect, then dead', (t) => {
  const d = new FailureDetector(o)
  d.observe(table(1), 'a', 0)
  t.deepEqual(rounds(d, table(1), 0, 900).marks, [])
  t.deepEqual(rounds(d, table(1), 1000, 1000).marks, [['b', 'suspect'], ['c', 'suspect']])
  t.deepEqual(rounds(d, table(1), 1100, 2000).marks, [['b', 'dead'], ['c', 'dead']])
})

test('detector: after a pause longer than deadAfterMs this node judges nobody from its stale view', (t) => {
  const d = new FailureDetector(o)
  d.observe(table(1), 'a', 0)
  rounds(d, table(1), 0, 500)
  // SIGSTOP at 500 ms, SIGCONT 10 s later: the first round after it.
  const woke = d.verdicts(table(1), 'a', 10_500)
  t.deepEqual(woke.marks, [], 'no verdict from the time it could not watch')
  t.is(woke.blindMs, 9_900)
  t.regex(d.describeSilence('b', 10_500), /no heartbeat for 0\.6 s/)
  // A member that really is gone gets a fresh period, then its verdict.
  t.deepEqual(rounds(d, table(1), 10_600, 10_800).marks, [])
  t.deepEqual(rounds(d, table(1), 10_900, 11_800).marks, [['b', 'suspect'], ['c', 'suspect']])
  t.deepEqual(rounds(d, table(1), 11_900, 11_900).marks, [['b', 'dead'], ['c', 'dead']])
})

test('detector: a pause before the first round is blind time too', (t) => {
  const d = new FailureDetector(o)
  d.observe(table(1), 'a', 0)
  d.watching(50)
  const woke = d.verdicts(table(1), 'a', 5000)
  t.deepEqual(woke.marks, [])
  t.is(woke.blindMs, 4850)
})

test('detector: a clock that jumps backwards restarts every suspicion period', (t) => {
  const d = new FailureDetector(o)
  d.observe(table(1), 'a', 5000)
  rounds(d, table(1), 5000, 5900)
  const back = d.verdicts(table(1), 'a', 1000)
  t.is(back.blindMs, Infinity)
  t.deepEqual(back.marks, [])
  t.deepEqual(rounds(d, table(1), 1100, 2900).marks, [['b', 'suspect'], ['c', 'suspect']])
  t.deepEqual(rounds(d, table(1), 3000, 3000).marks, [['b', 'dead'], ['c', 'dead']])
})

test('detector: a late round or two counts as watched time', (t) => {
  const d = new FailureDetector(o)
  d.observe(table(1), 'a', 0)
  rounds(d, table(1), 0, 1800)
  t.is(d.verdicts(table(1), 'a', 2000).blindMs, 0, 'a gap of two rounds is not a stall')
  t.deepEqual(d.verdicts(table(1), 'a', 2000).marks.map(([, s]) => s), ['dead', 'dead'])
})

test('detector: heardWithin lists members whose heartbeat advanced lately', (t) => {
  const d = new FailureDetector(o)
  d.observe(table(1), 'a', 0)
  d.observe({ b: member('b', 2) }, 'a', 900)
  t.deepEqual([...d.heardWithin(1000, 500)], ['b'])
})

test('probes: bounded; a member that called in itself takes the place of one that failed', (t) => {
  const p = new Probes({ max: 2, retryMs: 100, maxRetryMs: 1000, forgetAfterMs: 5000 })
  t.true(p.heard({ id: 'g1', address: 'x:1' }, 0))
  t.true(p.heard({ id: 'g2', address: 'x:2' }, 0))
  t.false(p.heard({ id: 'g3', address: 'x:3' }, 0), 'full')
  t.false(p.heard({ id: 'n', address: 'n:1' }, 0, true), 'nothing failed yet to make room')
  t.deepEqual(p.due(0, 10).map((x) => x.id), ['g1', 'g2'])
  t.deepEqual(p.due(0, 10), [], 'in flight')
  p.failed('g1', 0)
  p.failed('g2', 0)
  t.true(p.heard({ id: 'n', address: 'n:1' }, 0, true))
  t.is(p.size, 2)
  t.deepEqual(p.due(0, 10).map((x) => x.id), ['n'], 'failed ones wait')
})

test('probes: failures back off, successes rest, and what nobody mentions is forgotten', (t) => {
  const p = new Probes({ max: 8, retryMs: 100, maxRetryMs: 400, forgetAfterMs: 1000 })
  p.heard({ id: 'g', address: 'x:1' }, 0)
  const waits: number[] = []
  let now = 0
  for (let i = 0; i < 5; i++) {
    const [x] = p.due(now, 1)
    p.failed(x.id, now)
    let next = now
    while (p.due(next, 1).length === 0) next += 10
    p.release('g')
    waits.push(next - now)
    now = next
    p.heard({ id: 'g', address: 'x:1' }, now)
  }
  t.deepEqual(waits, [100, 200, 400, 400, 400])
  p.heard({ id: 'k', address: 'k:1' }, now)
  p.due(now, 8)
  p.succeeded('k', now)
  p.heard({ id: 'k', address: 'k:1' }, now + 50)
  t.false(p.due(now + 50, 8).some((x) => x.id === 'k'), 'a member that just answered rests')
  p.release('g')
  p.prune(now + 2000)
  t.is(p.size, 0)
})
