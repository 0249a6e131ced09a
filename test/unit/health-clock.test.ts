import test from 'ava'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../../node/clock/virtual'
import { health } from '../../node/health'
import { silentLogger } from '../../node/log'
import type { SupervisorEvents } from '../../node/supervisor/types'

test('health: checks run on the node\'s clock, and a reconcile pass stalled in virtual time makes the node unhealthy, then healthy once it ends', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-health-clock-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const clock = new VirtualClock(1_000_000)
  const said: Array<string | undefined> = []
  const supervisor = { events: new EventEmitter<SupervisorEvents>() }
  // Only the reconcile stall can trip: the host's event loop and disk are real and may be slow here.
  const h = health({ checkIntervalMs: 1000, failChecks: 2, recoverChecks: 3, reconcileStallMs: 5000, minFreeMb: 0, eventLoopDelayMs: 3_600_000, probeTimeoutMs: 3_600_000 })({
    membership: { setUnhealthy: (reason) => { said.push(reason) } }, supervisor, log: silentLogger, dataDir: dir, clock
  })
  await h.start()
  t.teardown(async () => await h.stop())
  const t0 = clock.now()
  supervisor.events.emit('reconcile', 'started')

  await clock.runUntil(t0 + 999)
  t.deepEqual(said, [], 'no check before one interval has passed on the clock')
  await clock.runUntil(t0 + 1000)
  t.deepEqual(said, [undefined], 'the first check, at one interval')

  await clock.runUntil(t0 + 6000)
  t.is(h.current(), undefined, 'at 6 s one check saw the pass over its 5 s bound: failChecks is 2')
  await clock.runUntil(t0 + 7000)
  t.is(h.current(), 'supervisor has not reconciled for 7 s', 'the stall is measured in virtual time')
  t.is(said.length, 7, 'one check per virtual second')

  supervisor.events.emit('reconcile', 'ended')
  await clock.runUntil(t0 + 9000)
  t.not(h.current(), undefined, 'two good checks are not enough (recoverChecks 3)')
  await clock.runUntil(t0 + 10_000)
  t.is(h.current(), undefined)
  t.is(said.at(-1), undefined, 'the membership is told it is healthy again')
})
