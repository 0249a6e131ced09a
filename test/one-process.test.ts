/**
 * A whole cluster in one process: twenty nodes from `startNode`, each with its own data
 * directory, on the in-memory transport (plugins/transport-memory). No sockets and no
 * child node processes, so it takes seconds: they form one member table, agree on the
 * hubs, apply the spec from a directory, compute the same schedule, and the singleton
 * and replicas it assigns run (the only processes started). On a VirtualClock the same
 * cluster runs on every production default, its seconds passing faster than real ones.
 */
import test, { type ExecutionContext } from 'ava'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import type { ImageConfig } from '../node/config/image'
import { startNode, type RunningNode } from '../node/assembly'
import { memoryNetwork, type MemoryNetwork } from '../plugins/transport-memory'
import { VirtualClock } from '../node/clock/virtual'
import { defaultConfig } from '../node/config'
import { fastMembership, makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const NODES = 20
const sleeper = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs', 'sleeper.js')

let dir = ''
let keys = ''
test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-one-process-'))
  keys = await makeKeys(join(dir, 'keys'), 'test')
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

// Addresses on the memory network are names; these are loopback ones because the proxy
// layer opens a real TCP listener for instance streams on its node's host (node/proxy).
const address = (cluster: number, i: number): string => `127.77.${cluster}.${i}:7400`
let clusters = 0

/** `count` nodes started with startNode on one memory network, stopped at teardown. */
async function oneProcessCluster (t: ExecutionContext, count: number, specDir?: string, clock?: VirtualClock): Promise<{ net: MemoryNetwork, nodes: RunningNode[] }> {
  const c = ++clusters
  const net = memoryNetwork()
  const nodes: RunningNode[] = []
  t.teardown(async () => { await Promise.all(nodes.map(async (n) => await n.stop().catch(() => {}))) })
  const config = (i: number): ImageConfig => ({
    cluster: 'test',
    listen: address(c, i),
    seeds: i === 1 ? [] : [address(c, 1)],
    data: join(dir, `c${c}`, `n${i}`),
    name: `n${String(i).padStart(2, '0')}`,
    labels: {},
    characteristics: { cpus: 2, memoryMb: 1024 + i },
    membership: clock === undefined ? fastMembership : defaultConfig().membership,
    hubs: {},
    log: { level: 'error' },
    ...(specDir === undefined ? {} : { specDir })
  })
  const start = async (i: number): Promise<void> => { nodes.push(await startNode({ config: config(i), keys, layers: { transport: net.transport }, clock })) }
  await start(1)
  await Promise.all(Array.from({ length: count - 1 }, async (_, i) => await start(i + 2)))
  nodes.sort((a, b) => a.id.localeCompare(b.id))
  return { net, nodes }
}

const seesAll = (nodes: RunningNode[], ids: string[], status = 'alive'): boolean =>
  nodes.every((n) => { const table = n.membership.table(); return ids.every((id) => table[id]?.status === status) })

test.serial('one process: 20 nodes on the memory transport form, elect hubs, apply a spec and schedule it alike', async (t) => {
  const started = Date.now()
  const specDir = join(dir, 'spec')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1, hubs: { count: 3 } }))
  const run = { command: process.execPath, args: [sleeper] }
  await writeFile(join(specDir, 'services', 'one.json'), JSON.stringify({ run, placement: { kind: 'singleton' }, stopGraceMs: 500 }))
  await writeFile(join(specDir, 'services', 'two.json'), JSON.stringify({ run, placement: { kind: 'replicas', count: 2 }, stopGraceMs: 500 }))
  const { nodes } = await oneProcessCluster(t, NODES, specDir)
  t.teardown(() => { if (!t.passed) t.log(nodes.map((n) => `${n.id}: hubs ${n.hubs.current().join(' ')}`).join('\n')) })
  const upAt = Date.now()
  const ids = nodes.map((n) => n.id)

  // One member table: every node has met every other and sees it alive.
  await waitFor(() => seesAll(nodes, ids), { what: `all ${NODES} nodes to see all ${NODES} alive`, timeoutMs: 30_000 })
  const formedAt = Date.now()

  // The same three hubs everywhere (the spec says three; which three depends on who was
  // first, since memory within the policy's margin does not displace a hub).
  const hubs = await waitFor(() => {
    const all = nodes.map((n) => JSON.stringify(n.hubs.current()))
    return all.every((h) => h === all[0]) ? nodes[0].hubs.current() : undefined
  }, { what: 'every node to name the same hubs', timeoutMs: 20_000 })
  t.is(hubs.length, 3)

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

  // What the schedule assigns runs where it says: the ready instances are exactly the
  // assignments of the schedule every node computes at that moment (on a loaded machine a
  // node may call itself unhealthy for a moment and the schedule move an instance).
  const placed = (assignments: Array<{ service: string, node: string }>): string[] => assignments.map((a) => `${a.service}@${a.node}`).sort()
  let seen = ''
  await waitFor(() => {
    const schedules = nodes.map((n) => JSON.stringify(placed(n.supervisor.current()?.assignments ?? [])))
    const ready = JSON.stringify(placed(nodes.flatMap((n) => n.supervisor.report()).filter((i) => i.status.state === 'ready')))
    seen = `ready ${ready}, scheduled ${schedules[0]}`
    return schedules.every((s) => s === schedules[0]) && ready === schedules[0]
  }, { what: 'the ready instances to be what every node schedules', timeoutMs: 20_000 }).catch((err: Error) => { throw new Error(`${err.message}: ${seen}`) })
  t.log(`${NODES} nodes up ${upAt - started} ms; formed ${formedAt - upAt} ms; hubs, spec and schedule ${scheduledAt - formedAt} ms; instances ready ${Date.now() - scheduledAt} ms`)
})

test.serial('one process: a node cut off the memory network is seen dead by the others, and alive again once reconnected', async (t) => {
  const { net, nodes } = await oneProcessCluster(t, 5)
  const ids = nodes.map((n) => n.id)
  await waitFor(() => seesAll(nodes, ids), { what: 'all 5 nodes to see all 5 alive' })
  const [cut, ...rest] = [nodes[4], ...nodes.slice(0, 4)]
  const cutAt = Date.now()
  net.disconnect(cut.address)
  await waitFor(() => seesAll(rest, [cut.id], 'dead'), { what: `${cut.id} seen dead by the others` })
  t.log(`${cut.id} seen dead by all after ${Date.now() - cutAt} ms (deadAfterMs ${fastMembership.deadAfterMs})`)
  t.true(seesAll(rest, rest.map((n) => n.id)), 'the others still see each other alive')
  net.reconnect(cut.address)
  await waitFor(() => seesAll(nodes, ids), { what: `${cut.id} alive again everywhere`, timeoutMs: 20_000 })
})

test.serial('one process: on a virtual clock, 20 nodes with every production default form, elect hubs, schedule, and see a cut node dead in virtual time', async (t) => {
  const clock = new VirtualClock(Date.now())
  const stopDriving = clock.drive({ stepMs: 20, realMs: 1 })
  t.teardown(stopDriving)
  const specDir = join(dir, 'spec-virtual')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1, hubs: { count: 3 } }))
  await writeFile(join(specDir, 'services', 'one.json'), JSON.stringify({ run: { command: process.execPath, args: [sleeper] }, placement: { kind: 'singleton' }, stopGraceMs: 500 }))
  const realStart = Date.now()
  const virtualStart = clock.now()
  const { net, nodes } = await oneProcessCluster(t, NODES, specDir, clock)
  const ids = nodes.map((n) => n.id)
  await waitFor(() => seesAll(nodes, ids), { what: `all ${NODES} nodes to see all ${NODES} alive`, timeoutMs: 60_000 })
  await waitFor(() => {
    const all = nodes.map((n) => JSON.stringify(n.hubs.current()))
    return all[0] !== '[]' && all.every((h) => h === all[0])
  }, { what: 'every node to name the same hubs', timeoutMs: 30_000 })
  t.is(nodes[0].hubs.current().length, 3)
  await waitFor(() => nodes.flatMap((n) => n.supervisor.report()).some((i) => i.service === 'one' && i.status.state === 'ready'),
    { what: 'the singleton ready', timeoutMs: 30_000 })
  t.log(`formed, hubs and singleton ready: ${clock.now() - virtualStart} ms of virtual time in ${Date.now() - realStart} ms of real time`)

  // Detection runs on the clock: a node cut off is dead only once its suspicion has lasted
  // the membership's least window in virtual time.
  const cut = nodes.find((n) => !n.hubs.current().includes(n.id) && !n.supervisor.report().some((i) => i.service === 'one')) ?? nodes[NODES - 1]
  const rest = nodes.filter((n) => n !== cut)
  const cutAt = { virtual: clock.now(), real: Date.now() }
  net.disconnect(cut.address)
  await waitFor(() => seesAll(rest, [cut.id], 'dead'), { what: `${cut.id} seen dead by the others`, timeoutMs: 60_000 })
  const virtualMs = clock.now() - cutAt.virtual
  t.log(`${cut.id} seen dead by all ${virtualMs} ms of virtual time after the cut (${Date.now() - cutAt.real} ms real)`)
  t.true(virtualMs >= defaultConfig().membership.suspectAfterMs, `dead after ${virtualMs} virtual ms, before the suspicion could have lasted ${defaultConfig().membership.suspectAfterMs} ms`)
  // Every log line of a node is stamped with its clock: the journal and the logs say virtual time.
  t.true(rest.every((n) => n.membership.table()[cut.id]?.status === 'dead'))
})
