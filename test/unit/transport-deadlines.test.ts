import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { DeadlineTimer, monotonicMs, type DeadlineOwner } from '../../node/transport/deadlines'
import { waitFor } from '../helpers/wait'

/** An owner holding deadlines the way RpcConnection holds its pending calls. */
class Owner implements DeadlineOwner {
  readonly due = new Map<string, number>()
  readonly expired: Array<{ key: string, late: number, fire: number }> = []
  fires = 0
  expire (now: number): number {
    this.fires++
    let next = Infinity
    for (const [key, at] of this.due) {
      if (at <= now) { this.due.delete(key); this.expired.push({ key, late: now - at, fire: this.fires }) } else next = Math.min(next, at)
    }
    return next
  }

  add (timer: DeadlineTimer, key: string, inMs: number): void {
    const at = monotonicMs() + inMs
    this.due.set(key, at)
    timer.added(at)
  }
}

test('deadlines: each deadline expires at or after its time, never after a later one, whatever order they were added in', async (t) => {
  const owner = new Owner()
  const timer = new DeadlineTimer(owner)
  t.teardown(() => timer.stop())
  owner.add(timer, 'c', 120)
  owner.add(timer, 'a', 30)
  owner.add(timer, 'b', 60)
  await waitFor(() => owner.expired.length === 3, { intervalMs: 5, what: 'three expiries' })
  // On a loaded machine one wake may find several due at once: then they share a fire.
  const fire = Object.fromEntries(owner.expired.map((e) => [e.key, e.fire]))
  t.true(fire.a <= fire.b && fire.b <= fire.c, `fires: ${JSON.stringify(fire)}`)
  for (const e of owner.expired) t.true(e.late >= 0, `${e.key} expired ${-e.late} ms early`)
})

test('deadlines: an answered call is not waited for; the timer wakes for the next one still standing', async (t) => {
  const owner = new Owner()
  const timer = new DeadlineTimer(owner)
  t.teardown(() => timer.stop())
  owner.add(timer, 'answered', 20)
  owner.add(timer, 'late', 80)
  owner.due.delete('answered') // answered: the owner forgets it, the timer is not told
  await waitFor(() => owner.expired.length === 1, { intervalMs: 5, what: 'the late call to expire' })
  t.deepEqual(owner.expired.map((e) => e.key), ['late'])
  t.true(owner.expired[0].late >= 0)
  const fires = owner.fires
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.is(owner.fires, fires, 'nothing left: the timer is not set again')
})

test('deadlines: a deadline beyond the longest setTimeout delay is not taken for 1 ms', async (t) => {
  const owner = new Owner()
  const timer = new DeadlineTimer(owner)
  t.teardown(() => timer.stop())
  owner.add(timer, 'far', 2 ** 33)
  owner.add(timer, 'near', 20)
  await waitFor(() => owner.expired.length === 1, { intervalMs: 5, what: 'the near deadline' })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.deepEqual(owner.expired.map((e) => e.key), ['near'])
  t.true(owner.due.has('far'))
})

/** How long a process that sets a deadline `inMs` away (then maybe says it is idle) takes to exit. */
async function exitAfter (inMs: number, idle: boolean): Promise<number> {
  const module = join(__dirname, '..', '..', 'node', 'transport', 'deadlines.js')
  const code = `
    const { DeadlineTimer, monotonicMs } = require(${JSON.stringify(module)})
    const timer = new DeadlineTimer({ expire: () => Infinity })
    timer.added(monotonicMs() + ${inMs})
    ${idle ? 'timer.idle()' : ''}`
  const started = Date.now()
  const child = spawn(process.execPath, ['-e', code], { stdio: 'inherit' })
  const [exitCode] = await once(child, 'exit') as [number]
  if (exitCode !== 0) throw new Error(`child exited with ${exitCode}`)
  return Date.now() - started
}

test('deadlines: a pending deadline holds the process open until it is due; once idle, it does not', async (t) => {
  const [held, idle] = await Promise.all([exitAfter(1500, false), exitAfter(60_000, true)])
  t.true(held >= 1400, `with a deadline pending the process exited after ${held} ms`)
  t.true(idle < 30_000, `idle, the process exited after ${idle} ms`)
})
