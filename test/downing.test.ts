/**
 * Downing with real node processes: a cluster that loses machines by crashes, one at a
 * time, shrinks to its last node and keeps its singleton running, with no operator
 * command (test/services.test.ts has the case downing must not decide: two crashes at once
 * leave one node of three, which cannot tell them from a partition, and an operator
 * forgets them).
 */
import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import type { ImageConfig } from '../node/config/image'
import { startNode, type RunningNode } from '../node/assembly'
import { memoryNetwork } from '../plugins/transport-memory'
import { fastMembership, makeKeys } from './helpers/cluster'
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

test.serial('downing: a node cut off alone is downed by the majority and downs nobody itself; reconnected, it is back as a new incarnation', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-downing-'))
  const keys = await makeKeys(join(dir, 'keys'), 'test')
  const net = memoryNetwork()
  const nodes: RunningNode[] = []
  t.teardown(async () => { await Promise.all(nodes.map(async (n) => await n.stop().catch(() => {}))); await rm(dir, { recursive: true, force: true }) })
  const config = (i: number): ImageConfig => ({
    cluster: 'test', listen: `127.78.0.${i}:7400`, seeds: i === 1 ? [] : ['127.78.0.1:7400'], data: join(dir, `n${i}`), name: `n${i}`,
    labels: {}, characteristics: { cpus: 2, memoryMb: 1024 }, membership: fastMembership, hubs: {}, log: { level: 'error' }
  })
  for (const i of [1, 2, 3]) nodes.push(await startNode({ config: config(i), keys, layers: { transport: net.transport } }))
  const status = (n: RunningNode, id: string): string | undefined => n.membership.table()[id]?.status
  const downedBy: string[] = []
  for (const n of nodes) n.membership.events.on('downed', ({ ids }: { ids: string[] }) => downedBy.push(`${n.id}: ${ids.join(', ')}`))
  await waitFor(() => nodes.every((n) => nodes.every((m) => status(n, m.id) === 'alive')), { what: 'all 3 to see all 3 alive' })
  const [n1, n2, n3] = nodes
  const incarnation = n3.membership.table().n3.incarnation
  const cutAt = Date.now()
  net.disconnect(n3.address)
  await waitFor(() => status(n1, 'n3') === 'left' && status(n2, 'n3') === 'left', { what: 'n1 and n2 to down n3', timeoutMs: 30_000 })
  const downedAt = Date.now()
  t.is(status(n3, 'n1'), 'dead', 'n3 sees n1 dead, and does not down it')
  t.is(status(n3, 'n2'), 'dead')
  t.true(downedBy.every((d) => !d.startsWith('n3')), `only the majority downed: ${downedBy.join('; ')}`)
  net.reconnect(n3.address)
  await waitFor(() => nodes.every((n) => nodes.every((m) => status(n, m.id) === 'alive')), { what: 'n3 alive again everywhere', timeoutMs: 20_000 })
  t.true(n1.membership.table().n3.incarnation > incarnation, 'n3 is back as a new incarnation')
  t.log(`cut -> downed by the majority ${downedAt - cutAt} ms (deadAfterMs ${fastMembership.deadAfterMs}, afterMs ${3 * fastMembership.deadAfterMs} by default); reconnected -> alive everywhere ${Date.now() - downedAt} ms`)
})
