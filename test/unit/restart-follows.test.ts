/**
 * A restart follows an instance that moved between the schedule's reading and the call
 * (node/control/actions.ts `followMoves`): a node that no longer runs it answers E_NOT_FOUND,
 * and the instance is looked up again; any other failure, or the instance no longer placed,
 * ends the restart with that error.
 */
import test from 'ava'
import { followMoves } from '../../node/control/actions'
import { systemClock } from '../../node/clock'
import { OriginError } from '../../node/errors'

// The node's sleeps are unref'd (they hold no process open): this keeps the test's open.
const keep = setInterval(() => {}, 1000)
test.after.always(() => { clearInterval(keep) })

test('restart: an instance that moved is restarted where it runs now', async (t) => {
  let placed = 'a'
  const asked: string[] = []
  const r = await followMoves({
    instance: 'web-1',
    clock: systemClock,
    followMs: 5000,
    placedOn: () => placed,
    on: async (node) => {
      asked.push(node)
      if (node === 'a') { placed = 'c'; throw new OriginError('E_NOT_FOUND', 'web-1 does not run on a') }
      return { instance: 'web-1', node, ms: 1 }
    }
  })
  t.deepEqual(asked, ['a', 'c'])
  t.is(r.node, 'c')
})

test('restart: other failures end it at once; so does an instance no longer placed, and a move that never settles', async (t) => {
  let calls = 0
  const down = await t.throwsAsync(followMoves({ instance: 'web-1', clock: systemClock, followMs: 5000, placedOn: () => 'b', on: async () => { calls++; throw new OriginError('E_UNREACHABLE', 'node b is dead') } }))
  t.is((down as OriginError).code, 'E_UNREACHABLE')
  t.is(calls, 1)
  const gone = await t.throwsAsync(followMoves({ instance: 'web-9', clock: systemClock, followMs: 5000, placedOn: () => undefined, on: async () => 'never' }))
  t.is((gone as OriginError).code, 'E_NOT_FOUND')
  t.regex(gone.message, /web-9 is not placed any more/)
  const t0 = Date.now()
  calls = 0
  const moving = await t.throwsAsync(followMoves({ instance: 'web-1', clock: systemClock, followMs: 500, placedOn: () => 'a', on: async () => { calls++; throw new OriginError('E_NOT_FOUND', 'web-1 does not run on a') } }))
  t.is((moving as OriginError).code, 'E_NOT_FOUND')
  t.true(calls >= 2 && Date.now() - t0 >= 500, `${calls} tries over ${Date.now() - t0} ms`)
})
