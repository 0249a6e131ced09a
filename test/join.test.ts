/**
 * Joining at start through a seed that answers slowly (a TCP proxy that holds every chunk,
 * as this kernel has no netem): the node waits `joinTimeoutMs` for the answer and joins,
 * instead of originating a second cluster that would run its own hubs and singletons until
 * the two merge. With a join timeout shorter than the seed takes, it originates, and merges
 * once the seed answers in time.
 */
import test from 'ava'
import { TestCluster, fastMembership } from './helpers/cluster'
import { startDelayProxy } from './helpers/delay-proxy'
import { waitFor } from './helpers/wait'

test('join: a node whose seed answers slowly joins it rather than originating; given less time than the seed takes, it originates, then merges', async (t) => {
  const c = await TestCluster.create()
  t.teardown(async () => await c.cleanup())
  await c.start({ name: 'a', seeds: [] })
  await c.waitForView({ a: 'alive' })
  // 400 ms each way: a call to a takes 800 ms, past the 500 ms an ordinary exchange waits (5 gossip periods).
  const slow = await startDelayProxy(c.node('a').address, 400)
  t.teardown(async () => await slow.close())
  const escaped = slow.address.replace(/\./g, '\\.')
  await c.explainFailure(async () => {
    await c.start({ name: 'b', seeds: [slow.address] })
    await waitFor(async () => new RegExp(`joined through ${escaped}`).test(await c.node('b').log()), { what: 'b to join a through the slow link', timeoutMs: 20_000 })
    await c.waitForView({ a: 'alive', b: 'alive' }, { on: ['a'] })

    await c.start({ name: 'c', seeds: [slow.address], membership: { ...fastMembership, joinTimeoutMs: 300 } })
    await waitFor(async () => new RegExp(`no seed answered \\(${escaped}\\): originating cluster as c`).test(await c.node('c').log()), { what: 'c to give up on the slow seed and originate', timeoutMs: 20_000 })
    slow.setDelay(0)
    await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' }, { timeoutMs: 30_000 })
  })
  t.false(/no seed answered/.test(await c.node('b').log()), 'b never originated')
})
