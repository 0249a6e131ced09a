import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { cliPath } from '../node/launch'
import { TestCluster, fastMembership } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const run = promisify(execFile)

async function cluster (t: { teardown (fn: () => Promise<void>): void }): Promise<TestCluster> {
  const c = await TestCluster.create()
  t.teardown(async () => await c.cleanup())
  return c
}

test.serial('cluster: three nodes form one cluster and agree on members and hubs', async (t) => {
  const c = await cluster(t)
  await c.start({ name: 'n1' })
  await c.start({ name: 'n2' })
  await c.start({ name: 'n3', seeds: ['n2'] })
  await c.waitForView({ n1: 'alive', n2: 'alive', n3: 'alive' })
  const hubSets = await Promise.all(['n1', 'n2', 'n3'].map(async (n) => await c.hubs(n)))
  t.deepEqual(hubSets[0].slice().sort(), ['n1', 'n2', 'n3'])
  t.deepEqual(hubSets[1], hubSets[0])
  t.deepEqual(hubSets[2], hubSets[0])
})

test.serial('hubs: a stronger fourth node is promoted and the weakest hub demoted, on every node', async (t) => {
  const c = await cluster(t)
  await c.start({ name: 'a', memoryMb: 3000 })
  await c.start({ name: 'b', memoryMb: 2000 })
  await c.start({ name: 'c', memoryMb: 1000 })
  await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  t.deepEqual(await c.hubs('a'), ['a', 'b', 'c'])
  await c.start({ name: 'd', memoryMb: 8000 })
  for (const n of ['a', 'b', 'c', 'd']) {
    await waitFor(async () => JSON.stringify(await c.hubs(n)) === JSON.stringify(['d', 'a', 'b']), { what: `${n} to see hubs d, a, b` })
  }
  const view = await c.view('c')
  t.false(view.c.hub, 'the weakest node is no longer a hub')
  t.true(view.d.hub)
})

test.serial('hubs: a newcomer only slightly stronger does not displace a hub (hysteresis)', async (t) => {
  const c = await cluster(t)
  await c.start({ name: 'a', memoryMb: 3000, hubs: { count: 2 } })
  await c.start({ name: 'b', memoryMb: 2000, hubs: { count: 2 } })
  await c.waitForView({ a: 'alive', b: 'alive' })
  await c.start({ name: 'c', memoryMb: 2100, hubs: { count: 2 } }) // 5 % more than b: within the 10 % margin
  await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  for (const n of ['a', 'b', 'c']) t.deepEqual(await c.hubs(n), ['a', 'b'], `${n} keeps the hub set`)
})

test.serial('membership: two clusters that both originated merge when one learns of the other', async (t) => {
  const c = await cluster(t)
  const bAddress = (await import('./helpers/cluster')).freeAddress
  const addressOfB = await bAddress()
  const a = await c.start({ name: 'a', seeds: [addressOfB] }) // b is not running yet: a originates
  await waitFor(async () => (await a.log()).includes('originating cluster'), { what: 'a to originate' })
  await c.start({ name: 'b', seeds: [], address: addressOfB }) // b originates too
  await waitFor(async () => (await c.node('b').log()).includes('originating cluster'), { what: 'b to originate' })
  await c.waitForView({ a: 'alive', b: 'alive' })
  t.deepEqual(await c.hubs('a'), await c.hubs('b'))
})

test.serial('membership: a node stopped with SIGTERM is seen as left, not dead', async (t) => {
  const c = await cluster(t)
  await c.start({ name: 'n1' })
  await c.start({ name: 'n2' })
  const n3 = await c.start({ name: 'n3' })
  await c.waitForView({ n1: 'alive', n2: 'alive', n3: 'alive' })
  n3.proc.signal('SIGTERM')
  t.is(await n3.proc.exited, 0, 'a graceful leave exits 0')
  // Well inside the failure-detection timeout: only the leave message can explain it.
  await c.waitForView({ n3: 'left' }, { on: ['n1', 'n2'], timeoutMs: fastMembership.suspectAfterMs })
  t.regex(await n3.log(), /left the cluster \(told 2 of 2 peers\)/)
})

test.serial('membership: a node killed with SIGKILL is seen dead by all within the timeout', async (t) => {
  const c = await cluster(t)
  await c.start({ name: 'n1' })
  await c.start({ name: 'n2' })
  const n3 = await c.start({ name: 'n3' })
  await c.waitForView({ n1: 'alive', n2: 'alive', n3: 'alive' })
  const killedAt = Date.now()
  n3.proc.signal('SIGKILL')
  await c.waitForView({ n3: 'dead' }, { on: ['n1', 'n2'], timeoutMs: fastMembership.deadAfterMs + 3000 })
  t.log(`seen dead by both after ${Date.now() - killedAt} ms (deadAfterMs ${fastMembership.deadAfterMs})`)
  t.regex(await c.node('n1').log(), /n3 is dead \(no answer for \d+\.\d s; /)
})

test.serial('membership: a restarted node keeps its id and comes back alive', async (t) => {
  const c = await cluster(t)
  await c.start({ name: 'n1' })
  const n2 = await c.start({ name: 'n2' })
  await c.waitForView({ n1: 'alive', n2: 'alive' })
  n2.proc.signal('SIGKILL')
  await c.waitForView({ n2: 'dead' }, { on: ['n1'] })
  await c.start({ name: 'n2', address: n2.address })
  await c.waitForView({ n1: 'alive', n2: 'alive' })
  t.is(Object.keys(await c.view('n1')).length, 2, 'no second entry for the restarted node')
})

test.serial('repl: origin repl -e prints the member table as JSON', async (t) => {
  const c = await cluster(t)
  await c.start({ name: 'n1' })
  await c.start({ name: 'n2' })
  await c.waitForView({ n1: 'alive', n2: 'alive' })
  const { stdout } = await run(process.execPath, [cliPath, 'repl', '--keys', c.keys, '--as', 'op', '--connect', c.node('n2').address, '-e', 'await cluster.nodes()'])
  const rows = JSON.parse(stdout) as Array<{ id: string, status: string }>
  t.deepEqual(rows.map((r) => `${r.id}:${r.status}`), ['n1:alive', 'n2:alive'])
})

test.serial('repl: an expression that throws prints the message and exits 1', async (t) => {
  const c = await cluster(t)
  await c.start({ name: 'n1' })
  await c.waitForView({ n1: 'alive' })
  const err = await t.throwsAsync(run(process.execPath, [cliPath, 'repl', '--keys', c.keys, '--as', 'op', '--connect', c.node('n1').address, '-e', 'await cluster.call("no.such.method")']))
  t.is((err as unknown as { code: number }).code, 1)
  t.regex((err as unknown as { stderr: string }).stderr, /no method "no.such.method"/)
})
