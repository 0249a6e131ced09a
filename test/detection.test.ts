/**
 * Failure detection with the default membership settings (SWIM with Lifeguard), real
 * node processes: a node killed with SIGKILL is dead on every other node. The bound is
 * generous for CI; the figures (each node's own moment, from its log) are printed, and
 * measured properly by `npm run bench -- membership`.
 */
import test from 'ava'
import { TestCluster } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const BOUND_MS = 5000

/** When `observer`'s log says `id` is dead (ms since epoch), if it does. */
async function deadAt (c: TestCluster, observer: string, id: string): Promise<number | undefined> {
  const line = (await c.node(observer).log()).split('\n').find((l) => l.includes(`/membership: ${id} is dead`))
  const at = line === undefined ? NaN : Date.parse(line.split(' ')[0])
  return Number.isNaN(at) ? undefined : at
}

test.serial('detection: a node killed with SIGKILL is dead on each of the 4 others within 5 s, with the default settings', async (t) => {
  const c = await TestCluster.create()
  t.teardown(async () => await c.cleanup())
  const names = ['d1', 'd2', 'd3', 'd4', 'd5']
  for (const name of names) await c.start({ name, membership: {}, logLevel: 'info' })
  await c.waitForView(Object.fromEntries(names.map((n) => [n, 'alive'])), { timeoutMs: 20_000 })
  await c.explainFailure(async () => {
    const victim = 'd4'
    const killedAt = Date.now()
    c.node(victim).proc.signal('SIGKILL')
    const others = names.filter((n) => n !== victim)
    const times = await Promise.all(others.map(async (n) => await waitFor(async () => await deadAt(c, n, victim), { what: `${n} to log ${victim} dead`, timeoutMs: BOUND_MS + 5000 })))
    const after = times.map((at) => at - killedAt)
    t.log(`kill -9 -> dead on ${others.join(', ')}: ${after.map((ms) => `${ms} ms`).join(', ')}`)
    for (const [i, ms] of after.entries()) t.true(ms <= BOUND_MS, `${others[i]} saw ${victim} dead ${ms} ms after the kill`)
    for (const n of others) t.notRegex(await c.node(n).log(), /membership: d[1235] is dead/, `${n} took no live node for dead`)
  })
})
