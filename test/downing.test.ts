/**
 * Downing with real node processes: a cluster that loses machines by crashes, one at a
 * time, shrinks to its last node and keeps its singleton running, with no operator
 * command (test/services.test.ts has the case downing must not decide: two crashes at once
 * leave one node of three, which cannot tell them from a partition, and an operator
 * forgets them).
 */
import test from 'ava'
import { join, resolve } from 'node:path'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

const sleeperJs = join(resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs'), 'sleeper.js')
const singleton = { run: { command: 'node', args: [sleeperJs] }, placement: { kind: 'singleton' }, stopGraceMs: 2000 }
const AFTER_MS = 3000

test.serial('downing: the survivor of two crashes, one at a time, downs them after afterMs and runs the singleton with no command; a killed node restarted rejoins', async (t) => {
  const s = await specDirCluster(t, { downing: { strategy: 'keep-majority', afterMs: AFTER_MS } })
  const image = { specDir: s.dir }
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image })
  await s.c.explainFailure(async () => {
    await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
    await waitFor(async () => /downing: keep-majority after 3\.0 s/.test(await s.c.node('a').log()), { what: 'a to take the spec\'s downing policy' })
    await s.write('services/one.json', singleton)
    await s.waitInstances('a', 'one', 1)

    // c crashes: a and b see it dead, then down it (3 -> 2, a majority of the last stable membership).
    const cKilled = Date.now()
    s.c.node('c').proc.signal('SIGKILL')
    await s.c.waitForView({ c: 'dead' }, { on: ['a', 'b'] })
    const cDead = Date.now()
    await s.c.waitForView({ c: 'left' }, { on: ['a', 'b'], timeoutMs: 30_000 })
    const cDowned = Date.now()
    await s.waitInstances('a', 'one', 1)

    // b crashes: a is half of {a, b} with the lowest id, so it downs b and runs the singleton alone.
    const host = (await s.instances('a', 'one', 'ready'))[0]?.node
    const bKilled = Date.now()
    s.c.node('b').proc.signal('SIGKILL')
    const onA = waitFor(async () => {
      const r = await s.instances('a', 'one', 'ready')
      return r.length === 1 && r[0].node === 'a' ? { r, at: Date.now() } : undefined
    }, { what: 'the singleton to run on a', timeoutMs: 30_000 })
    await s.c.waitForView({ b: 'dead' }, { on: ['a'] })
    const bDead = Date.now()
    await s.c.waitForView({ b: 'left' }, { on: ['a'], timeoutMs: 30_000 })
    const bDowned = Date.now()
    const { r: [one], at: running } = await onA
    t.is(one.node, 'a')
    t.regex(await s.c.node('a').log(), /downing b \(keep-majority: 1 of 2 members alive, half, with the lowest id \(a\)/)
    t.log(`c: kill -9 -> dead ${cDead - cKilled} ms, -> downed ${cDowned - cKilled} ms`)
    t.log(`b: kill -9 -> dead ${bDead - bKilled} ms, -> downed ${bDowned - bKilled} ms, -> singleton ready on a ${running - bKilled} ms (it ran on ${host ?? 'no node'} before)`)

    // c starts again (same data dir, same id): welcomed as a new incarnation.
    const restarted = Date.now()
    await s.c.start({ name: 'c', address: s.c.node('c').address, image })
    await s.c.waitForView({ a: 'alive', c: 'alive' }, { on: ['a', 'c'] })
    t.log(`c restarted: alive on a and c ${Date.now() - restarted} ms after its start`)
    const after = await s.instances('a', 'one', 'ready')
    t.is(after.length, 1, 'still one singleton')
  })
})
