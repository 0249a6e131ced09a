import test from 'ava'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { causes, healthyState, percentile, step, type Cause, type HealthState } from '../../node/health/decide'
import { healthDefaults } from '../../node/health/config'
import { DataDirProbe, LoopDelay, ReconcileWatch } from '../../node/health/measure'
import { parseImageConfig } from '../../node/config/image'

const MiB = 1024 * 1024
const bounds = healthDefaults

test('health: each cause is said in words with its bound', (t) => {
  t.deepEqual(causes({}, bounds, '/var/lib/origin'), [])
  t.deepEqual(causes({ eventLoopDelayMs: 999, probe: { ok: true }, freeBytes: 300 * MiB, reconcilingMs: 59_000 }, bounds, '/d'), [])
  const all = causes({ eventLoopDelayMs: 2345, probe: { ok: false, error: 'EROFS' }, freeBytes: 80 * MiB + 5, reconcilingMs: 45_000 }, { ...bounds, reconcileStallMs: 30_000 }, '/var/lib/origin')
  t.deepEqual(all.map((c) => c.text), [
    'event loop delayed 2.3 s (bound 1 s)',
    'data dir /var/lib/origin not writable: EROFS',
    'data dir has 80 MiB free (floor 256 MiB)',
    'supervisor has not reconciled for 45 s'
  ])
  t.deepEqual(causes({ probe: { ok: true }, probePendingMs: 12_000 }, bounds, '/d').map((c) => c.text), ['data dir /d not writable: a write has hung for 12 s'])
  t.deepEqual(causes({ probe: { ok: true }, probePendingMs: 900 }, bounds, '/d'), [], 'a probe that is merely slow is no cause')
})

const cause = (kind: Cause['kind'], text: string = kind): Cause => ({ kind, text })
const run = (found: Cause[][], h = { failChecks: 3, recoverChecks: 5 }): Array<string | undefined> => {
  let s: HealthState = healthyState
  return found.map((f) => { s = step(s, f, h); return s.reason })
}

test('health: unhealthy after failChecks checks in a row, healthy after recoverChecks without a cause', (t) => {
  const disk = [cause('disk-space', 'data dir has 80 MiB free (floor 256 MiB)')]
  t.deepEqual(run([disk, disk, [], disk, disk, disk, [], [], [], [], [], []]), [
    undefined, undefined, undefined, undefined, undefined, 'data dir has 80 MiB free (floor 256 MiB)',
    'data dir has 80 MiB free (floor 256 MiB)', 'data dir has 80 MiB free (floor 256 MiB)', 'data dir has 80 MiB free (floor 256 MiB)', 'data dir has 80 MiB free (floor 256 MiB)', undefined, undefined
  ])
})

test('health: the reason is reworded when a cause comes or goes, not when its numbers move', (t) => {
  const h = { failChecks: 1, recoverChecks: 2 }
  let s = step(healthyState, [cause('event-loop', 'event loop delayed 2.3 s (bound 1 s)')], h)
  s = step(s, [cause('event-loop', 'event loop delayed 4.1 s (bound 1 s)')], h)
  t.is(s.reason, 'event loop delayed 2.3 s (bound 1 s)')
  s = step(s, [cause('event-loop', 'event loop delayed 3 s (bound 1 s)'), cause('supervisor', 'supervisor has not reconciled for 61 s')], h)
  t.is(s.reason, 'event loop delayed 3 s (bound 1 s); supervisor has not reconciled for 61 s')
  s = step(s, [cause('supervisor', 'supervisor has not reconciled for 62 s')], h)
  t.is(s.reason, 'supervisor has not reconciled for 62 s')
})

test('health: hysteresis — the node changes its word only after failChecks or recoverChecks checks in a row agree', (t) => {
  const arb = fc.record({
    failChecks: fc.integer({ min: 1, max: 5 }),
    recoverChecks: fc.integer({ min: 1, max: 5 }),
    checks: fc.array(fc.boolean(), { maxLength: 60 })
  })
  fc.assert(fc.property(arb, ({ failChecks, recoverChecks, checks }) => {
    let s: HealthState = healthyState
    let streak = { bad: 0, good: 0 }
    for (const bad of checks) {
      const was = s.reason
      s = step(s, bad ? [cause('disk-space')] : [], { failChecks, recoverChecks })
      streak = bad ? { bad: streak.bad + 1, good: 0 } : { bad: 0, good: streak.good + 1 }
      if (was === undefined && s.reason !== undefined) assert.ok(streak.bad >= failChecks, 'turned unhealthy too soon')
      if (was !== undefined && s.reason === undefined) assert.ok(streak.good >= recoverChecks, 'turned healthy too soon')
      if (streak.bad >= failChecks) assert.notEqual(s.reason, undefined, 'still healthy after failChecks bad checks')
      if (streak.good >= recoverChecks) assert.equal(s.reason, undefined, 'still unhealthy after recoverChecks good checks')
    }
  }))
  t.pass()
})

test('health: image.json health settings are validated, with the field named', (t) => {
  const base = { cluster: 'c' }
  t.deepEqual(parseImageConfig(JSON.stringify({ ...base, health: { minFreeMb: 1024, failChecks: 2 } })).health, { minFreeMb: 1024, failChecks: 2 })
  t.is(parseImageConfig(JSON.stringify(base)).health, undefined)
  t.throws(() => parseImageConfig(JSON.stringify({ ...base, health: { failChecks: 0 } })), { message: /health\/failChecks/ })
  t.throws(() => parseImageConfig(JSON.stringify({ ...base, health: { minFreeMB: 10 } })), { message: /health.*minFreeMB/ })
})

test('health: the data dir probe writes, syncs and removes its file, reports free space, and names the error of a dir it cannot write', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-health-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const probe = new DataDirProbe(dir, Date.now)
  t.deepEqual(probe.check(), {}, 'nothing finished yet')
  await probe.settled()
  t.deepEqual(await readdir(dir), [], 'the probe file is removed')
  const first = probe.check()
  t.deepEqual(first.probe, { ok: true })
  t.true((first.freeBytes ?? 0) > 0)
  await probe.settled()
  const missing = new DataDirProbe(join(dir, 'gone'), Date.now)
  missing.check()
  await missing.settled()
  t.deepEqual(missing.check().probe, { ok: false, error: 'ENOENT' })
  await missing.settled()
})

test('health: the event loop delay is the p99 of a timer\'s lateness over a sliding window', async (t) => {
  const loop = new LoopDelay(1000, 10)
  loop.start()
  t.teardown(() => loop.stop())
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.true((loop.p99() ?? 0) < 300, 'an idle loop is on time')
  const until = Date.now() + 400
  while (Date.now() < until) { /* block the loop, as a stuck node would */ }
  await new Promise((resolve) => setTimeout(resolve, 50))
  const delay = loop.p99() ?? 0
  t.true(delay >= 350 && delay < 2000, `measured ${delay} ms`)
  // What stats show: the stall is the max, most samples were on time.
  const figures = loop.figures()
  t.true(figures !== undefined && figures.max >= 350 && figures.p50 < 300 && figures.p99 <= figures.max, JSON.stringify(figures))
  // Once the stall is out of the window, it no longer counts.
  await new Promise((resolve) => setTimeout(resolve, 1200))
  t.true((loop.p99() ?? 0) < 300, `measured ${loop.p99() ?? 0} ms after the window slid past the stall`)
  t.true((loop.figures()?.max ?? 0) < 300, JSON.stringify(loop.figures()))
  t.is(new LoopDelay(1000, 10).figures(), undefined, 'no figures before the first sample')
})

test('health: the loop delay window keeps the samples of the last windowMs, oldest first, in a ring that never grows (property)', (t) => {
  // Samples at least resolutionMs apart, as a timer takes them; checks at any time between.
  // Mostly on time (a full window: the ring at its fullest), now and then a late timer.
  const gap = fc.oneof({ arbitrary: fc.constant(20), weight: 9 }, { arbitrary: fc.integer({ min: 21, max: 400 }), weight: 1 })
  const step = fc.record({ gap, late: fc.integer({ min: 0, max: 5000 }), check: fc.boolean() })
  fc.assert(fc.property(fc.integer({ min: 100, max: 1500 }), fc.array(step, { maxLength: 400 }), (windowMs, steps) => {
    let now = 0
    const loop = new LoopDelay(windowMs, 20, () => now)
    const model: Array<{ at: number, ms: number }> = []
    for (const s of steps) {
      now += s.gap
      loop.record(now, s.late)
      model.push({ at: now, ms: s.late })
      if (!s.check) continue
      const want = model.filter((m) => m.at >= now - windowMs).map((m) => m.ms)
      assert.equal(loop.p99(), percentile(want, 99))
      assert.deepEqual(loop.figures(), want.length === 0 ? undefined : { p50: percentile(want, 50), p99: percentile(want, 99), max: Math.max(...want) })
    }
  }), { numRuns: 300 })
  t.pass()
})

test('health: percentile by nearest rank: one stall in a hundred samples is the 1% that p99 leaves out', (t) => {
  t.is(percentile([], 99), undefined)
  t.is(percentile([5], 99), 5)
  const hundred = [...Array.from({ length: 99 }, () => 1), 900]
  t.is(percentile(hundred, 99), 1)
  t.is(percentile([...hundred, 900], 99), 900)
})

test('health: a reconcile pass counts as stuck by its own time, builds not counted', (t) => {
  const w = new ReconcileWatch()
  t.is(w.reconcilingMs(1000), 0)
  w.reconcile('started', 1000)
  t.is(w.reconcilingMs(5000), 4000)
  w.build('started', 5000)
  t.is(w.reconcilingMs(90_000), 0, 'a build is under way')
  w.build('failed', 90_000)
  t.is(w.reconcilingMs(91_000), 1000, 'counted again from the end of the build')
  w.reconcile('ended', 92_000)
  t.is(w.reconcilingMs(200_000), 0)
})
