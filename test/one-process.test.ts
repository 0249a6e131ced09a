/**
 * A whole cluster in one process: twenty nodes from `startNode`, each with its own data
 * directory, on the in-memory transport (plugins/transport-memory). No sockets and no
 * child node processes, so it takes seconds: they form one member table, agree on the
 * hubs, apply the spec from a directory, compute the same schedule, and the singleton
 * and replicas it assigns run (the only processes started).
 */
import test from 'ava'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import type { ImageConfig } from '../node/config/image'
import { startNode, type RunningNode } from '../node/node'
import { memoryNetwork } from '../plugins/transport-memory'
import { fastMembership, makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const NODES = 20
const sleeper = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs', 'sleeper.js')

test('one process: 20 nodes on the memory transport form, elect hubs, apply a spec and schedule it alike', async (t) => {
  const started = Date.now()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-one-process-'))
  const nodes: RunningNode[] = []
  t.teardown(async () => {
    await Promise.all(nodes.map(async (n) => await n.stop().catch(() => {})))
    await rm(dir, { recursive: true, force: true })
  })
  const keys = await makeKeys(join(dir, 'keys'), 'test')
  const specDir = join(dir, 'spec')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1, hubs: { count: 3 } }))
  const run = { command: process.execPath, args: [sleeper] }
  await writeFile(join(specDir, 'services', 'one.json'), JSON.stringify({ run, placement: { kind: 'singleton' }, stopGraceMs: 500 }))
  await writeFile(join(specDir, 'services', 'two.json'), JSON.stringify({ run, placement: { kind: 'replicas', count: 2 }, stopGraceMs: 500 }))
  const keysAt = Date.now()

  // Addresses on the memory network are names; these are loopback ones because the proxy
  // layer opens a real TCP listener for instance streams on its node's host (node/proxy).
  const net = memoryNetwork()
  const address = (i: number): string => `127.77.0.${i}:7400`
  const config = (i: number): ImageConfig => ({
    cluster: 'test',
    listen: address(i),
    seeds: i === 1 ? [] : [address(1)],
    data: join(dir, `n${i}`),
    name: `n${String(i).padStart(2, '0')}`,
    labels: {},
    characteristics: { cpus: 2, memoryMb: 1024 + i },
    membership: fastMembership,
    hubs: {},
    log: { level: 'error' },
    specDir
  })
  nodes.push(await startNode({ config: config(1), keys, layers: { transport: net.transport } }))
  nodes.push(...await Promise.all(Array.from({ length: NODES - 1 }, async (_, i) => await startNode({ config: config(i + 2), keys, layers: { transport: net.transport } }))))
  const upAt = Date.now()
  const ids = nodes.map((n) => n.id).sort()

  // One member table: every node has met every other and sees it alive.
  await waitFor(() => nodes.every((n) => {
    const table = n.membership.table()
    return ids.every((id) => table[id]?.status === 'alive')
  }), { what: `all ${NODES} nodes to see all ${NODES} alive`, timeoutMs: 30_000 })
  const formedAt = Date.now()

  // The same hubs everywhere: the three with most memory (the spec says three).
  const strongest = ['n20', 'n19', 'n18']
  await waitFor(() => nodes.every((n) => JSON.stringify(n.hubs.current()) === JSON.stringify(strongest)), { what: 'every node to name the same three hubs', timeoutMs: 20_000 })

  // The spec applied everywhere, and one schedule computed alike.
  await waitFor(() => nodes.every((n) => n.spec.current() !== undefined), { what: 'the spec applied on every node' })
  const version = nodes[0].spec.current()?.version
  t.true(nodes.every((n) => n.spec.current()?.version === version))
  const schedule = await waitFor(() => {
    const all = nodes.map((n) => JSON.stringify(n.supervisor.current()?.assignments))
    return all[0] !== undefined && all.every((s) => s === all[0]) ? nodes[0].supervisor.current() : undefined
  }, { what: 'every node to compute the same schedule', timeoutMs: 20_000 })
  t.deepEqual(schedule.assignments.map((a) => a.service).sort(), ['one', 'two', 'two'])
  t.deepEqual(schedule.unschedulable, [])
  const scheduledAt = Date.now()

  // What the schedule assigns runs where it says.
  const ready = await waitFor(() => {
    const r = nodes.flatMap((n) => n.supervisor.report()).filter((i) => i.status.state === 'ready')
    return r.length === 3 ? r : undefined
  }, { what: 'the three instances ready', timeoutMs: 20_000 })
  t.deepEqual(ready.map((i) => `${i.service}@${i.node}`).sort(), schedule.assignments.map((a) => `${a.service}@${a.node}`).sort())
  t.log(`keys ${keysAt - started} ms; ${NODES} nodes up ${upAt - keysAt} ms; formed ${formedAt - upAt} ms; hubs, spec and schedule ${scheduledAt - formedAt} ms; instances ready ${Date.now() - scheduledAt} ms`)
})
