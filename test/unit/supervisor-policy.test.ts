import test from 'ava'
import fc from 'fast-check'
import { afterCheck, afterExit, backoffDelay, freshRestarts, overMemory, samplingClock, serviceDefaults, startRetryDelay, type HealthState, type RestartMemory, type RestartPolicy } from '../../node/supervisor/policy'

// ---- restart ----------------------------------------------------------------------------

test('restart: always restarts, on-failure only a failed run, never none; a run that ends without failing is stopped', (t) => {
  const now = 1_000_000
  const of = (policy: RestartPolicy, failed: boolean): string => afterExit({ policy }, freshRestarts(), { failed, ranForMs: 10 }, now).kind
  t.deepEqual([of('always', false), of('always', true)], ['restart', 'restart'])
  t.deepEqual([of('on-failure', false), of('on-failure', true)], ['final', 'restart'])
  t.deepEqual([of('never', false), of('never', true)], ['final', 'final'])
  const d = afterExit({ policy: 'never' }, freshRestarts(), { failed: true }, now)
  t.true(d.kind === 'final' && d.state === 'failed')
  const e = afterExit({ policy: 'on-failure' }, freshRestarts(), { failed: false, ranForMs: 5 }, now)
  t.true(e.kind === 'final' && e.state === 'stopped')
})

test('restart: the delays double from backoffMs up to the cap (defaults 0.5 s to 30 s)', (t) => {
  let memory = freshRestarts()
  const delays: number[] = []
  for (let i = 0; i < 9; i++) {
    // Spread over time so the crash-loop check never trips.
    const d = afterExit({ policy: 'always' }, memory, { failed: true, ranForMs: 100 }, i * serviceDefaults.crashLoopWindowMs)
    if (d.kind !== 'restart') return t.fail(d.kind)
    delays.push(d.delayMs)
    memory = d.memory
  }
  t.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
})

test('restart: a run that lasted stableAfterMs starts the backoff afresh', (t) => {
  const memory: RestartMemory = { attempt: 6, restartTimes: [] }
  const short = afterExit({ policy: 'always' }, memory, { failed: true, ranForMs: serviceDefaults.stableAfterMs - 1 }, 0)
  const stable = afterExit({ policy: 'always' }, memory, { failed: true, ranForMs: serviceDefaults.stableAfterMs }, 0)
  t.true(short.kind === 'restart' && short.delayMs === 30_000)
  t.true(stable.kind === 'restart' && stable.delayMs === 500 && stable.attempt === 1)
})

test('restart: more than crashLoopRestarts restarts within the window ends in a crash loop', (t) => {
  let memory = freshRestarts()
  const kinds: string[] = []
  for (let i = 0; i < 7; i++) {
    const d = afterExit({ policy: 'always', crashLoopRestarts: 5, crashLoopWindowMs: 60_000 }, memory, { failed: true, ranForMs: 10 }, i * 1000)
    kinds.push(d.kind)
    memory = d.memory
  }
  t.deepEqual(kinds, ['restart', 'restart', 'restart', 'restart', 'restart', 'crash-loop', 'crash-loop'])
})

test('restart property: a delay is never below backoffMs nor above the cap, never shrinks between unstable runs, and restarts in any window never exceed the limit', (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 5000 }),
    fc.integer({ min: 1, max: 120_000 }),
    fc.integer({ min: 1, max: 8 }),
    fc.array(fc.record({ gap: fc.integer({ min: 0, max: 40_000 }), ranForMs: fc.integer({ min: 0, max: 20_000 }), failed: fc.boolean() }), { maxLength: 40 }),
    (backoffMs, maxBackoffMs, crashLoopRestarts, runs) => {
      const s = { policy: 'always' as const, backoffMs, maxBackoffMs, crashLoopRestarts, crashLoopWindowMs: 60_000 }
      let memory = freshRestarts()
      let now = 0
      let previous = 0
      const restartedAt: number[] = []
      for (const r of runs) {
        now += r.gap
        const d = afterExit(s, memory, r, now)
        if (d.kind === 'final') return false // `always` always restarts or stops for a crash loop
        if (d.kind === 'crash-loop') {
          if (restartedAt.filter((x) => now - x < 60_000).length < crashLoopRestarts) return false
          continue
        }
        const stable = r.ranForMs >= serviceDefaults.stableAfterMs
        if (d.delayMs < Math.min(backoffMs, maxBackoffMs) || d.delayMs > maxBackoffMs) return false
        if (!stable && d.delayMs < previous) return false
        previous = d.delayMs
        restartedAt.push(now)
        if (restartedAt.filter((x) => now - x < 60_000).length > crashLoopRestarts) return false
        memory = d.memory
      }
      return true
    }
  ), { numRuns: 1000 })
  t.is(backoffDelay(1), serviceDefaults.backoffMs)
})

test('start retries: a start that failed before its process ran waits 1 s, doubling to a minute', (t) => {
  t.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(startRetryDelay), [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000])
})

// ---- health -----------------------------------------------------------------------------

test('health: a pass makes a starting run ready; unhealthyAfter failures in a row turn a ready run unhealthy; a pass heals it', (t) => {
  const ok = { ok: true, detail: 'GET / -> 200' }
  const bad = { ok: false, detail: 'GET / -> 500' }
  t.deepEqual(afterCheck('starting', 0, ok, 0), { failures: 0, state: 'ready', reason: undefined, setsReason: true })
  t.deepEqual(afterCheck('starting', 0, bad, 0), { failures: 0, reason: 'health check failing: GET / -> 500', setsReason: true })
  t.deepEqual(afterCheck('ready', 0, bad, 9999), { failures: 1, setsReason: false })
  t.deepEqual(afterCheck('ready', 2, bad, 9999), { failures: 3, state: 'unhealthy', reason: 'health check failing: GET / -> 500', setsReason: true })
  t.deepEqual(afterCheck('unhealthy', 3, ok, 9999), { failures: 0, state: 'ready', reason: undefined, setsReason: true })
  t.deepEqual(afterCheck('ready', 0, bad, 999, { startPeriodMs: 1000 }), { failures: 0, setsReason: false }, 'within the start period a failure does not count')
})

test('health property: a run turns unhealthy exactly at unhealthyAfter counted failures in a row, never while starting, never in its start period', (t) => {
  fc.assert(fc.property(
    fc.array(fc.record({ ok: fc.boolean(), at: fc.integer({ min: 0, max: 100 }) }), { maxLength: 60 }),
    fc.integer({ min: 0, max: 2000 }),
    fc.integer({ min: 1, max: 5 }),
    (checks, startPeriodMs, unhealthyAfter) => {
      let state: HealthState = 'starting'
      let failures = 0
      let streak = 0
      let since = 0
      for (const c of checks) {
        since += c.at
        const v = afterCheck(state, failures, { ok: c.ok, detail: 'x' }, since, { startPeriodMs, unhealthyAfter })
        const counted = !c.ok && state !== 'starting' && since >= startPeriodMs
        streak = c.ok ? 0 : counted ? streak + 1 : streak
        if (v.failures !== streak) return false
        if (v.state === 'unhealthy' && (state !== 'ready' || streak !== unhealthyAfter)) return false
        if (state === 'ready' && streak >= unhealthyAfter && v.state !== 'unhealthy') return false
        if (c.ok && v.state !== undefined && v.state !== 'ready') return false
        failures = v.failures
        state = v.state ?? state
      }
      return true
    }
  ), { numRuns: 1000 })
  t.pass()
})

// ---- memory -----------------------------------------------------------------------------

test('memory: only a run over its limit is killed, not one the runtime holds to it, nor twice, nor one stopping', (t) => {
  const o = { limitMb: 64, enforcedByRuntime: false, alreadyKilling: false, stopping: false, scope: 'the whole instance' }
  t.is(overMemory({ rssKb: 64 * 1024, pids: 1 }, o), undefined, 'at the limit is not over it')
  t.is(overMemory({ rssKb: 64 * 1024 + 1, pids: 3 }, o), 'exceeded memory limit 64 MB: rss 65 MB (the whole instance, 3 processes)')
  t.is(overMemory({ rssKb: 200_000, pids: 1 }, { ...o, enforcedByRuntime: true }), undefined)
  t.is(overMemory({ rssKb: 200_000, pids: 1 }, { ...o, alreadyKilling: true }), undefined)
  t.is(overMemory({ rssKb: 200_000, pids: 1 }, { ...o, stopping: true }), undefined)
  t.is(overMemory({ rssKb: 200_000, pids: 1 }, { ...o, limitMb: undefined }), undefined)
})

test('memory property: a kill reason never reads as at or under the limit, and the sample clock falls on multiples of the interval', (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.boolean(), (limitMb, rssKb, now, hasLimit) => {
    const reason = overMemory({ rssKb, pids: 1 }, { limitMb, enforcedByRuntime: false, alreadyKilling: false, stopping: false, scope: 'x' })
    const said = reason === undefined ? undefined : Number(/rss (\d+) MB/.exec(reason)?.[1])
    const clock = samplingClock(now, hasLimit, 1000)
    return (reason === undefined) === (rssKb <= limitMb * 1024) && (said === undefined || said > limitMb) &&
      (now + clock.firstInMs) % clock.everyMs === 0 && clock.firstInMs > 0 && clock.everyMs === (hasLimit ? 1000 : 10_000)
  }), { numRuns: 2000 })
  t.pass()
})
