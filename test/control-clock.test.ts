/**
 * control on a virtual clock: `cluster.stats` asks every member over the memory transport,
 * all on one VirtualClock; a member that answers is listed with its stats, and one that
 * hangs is listed unreachable once the time limit has passed in virtual time, not before.
 * The view's time is the clock's.
 */
import test, { type ExecutionContext } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../node/clock/virtual'
import { clusterStats, statsTimeoutMs } from '../node/control/cluster-stats'
import { meshCount } from '../node/control/mesh'
import { StatsSampler, type NodeStats, type StatsView } from '../node/control/stats'
import { loadIdentity } from '../node/keys'
import { silentLogger } from '../node/log'
import type { Member, MemberTable } from '../node/membership'
import { mesh } from '../node/protocol/mesh'
import { serve } from '../node/protocol/table'
import type { Transport } from '../node/transport'
import { memoryNetwork, type MemoryNetwork } from '../plugins/transport-memory'
import { makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

let keys = ''
test.before(async () => { keys = await makeKeys(await mkdtemp(join(os.tmpdir(), 'origin-control-clock-keys-')), 'test') })
test.after.always(async () => { if (keys !== '') await rm(keys, { recursive: true, force: true }) })

async function transportOf (t: ExecutionContext, net: MemoryNetwork, clock: VirtualClock, id: string): Promise<Transport> {
  const ident = await loadIdentity({ keys })
  const identity = { ca: ident.ca, cert: ident.cert, key: ident.key, cluster: ident.info.cluster }
  const transport = net.transport({ listen: `${id}:7400` })({ identity, log: silentLogger, clock })
  t.teardown(async () => { await transport.stop() })
  await transport.start()
  return transport
}

const member = (id: string, address: string): Member => ({ id, address, incarnation: 1, heartbeat: 1, status: 'alive', hub: false, characteristics: { cpus: 1, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: 0 } })

test.serial('control on a virtual clock: cluster.stats lists a hung member unreachable once its time limit passed in virtual time, not before', async (t) => {
  const clock = new VirtualClock(1_700_000_000_000)
  const net = memoryNetwork()
  const [asker, b, hung] = [await transportOf(t, net, clock, 'asker'), await transportOf(t, net, clock, 'b'), await transportOf(t, net, clock, 'hung')]
  const table: MemberTable = { b: member('b', b.address), hung: member('hung', hung.address) }
  // b answers with its real measurement (a node with no instances); `hung` never does.
  const dataDir = await mkdtemp(join(os.tmpdir(), 'origin-control-clock-'))
  t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const bMembership = { id: 'b', address: b.address, table: () => table }
  const sampler = new StatsSampler({ dataDir, membership: bMembership, supervisor: { report: () => [] }, mesh: meshCount({ transport: b, membership: bMembership }), transport: b, clock })
  let bAnswered = false
  serve(b, mesh, 'stats.node', async () => { const r = await sampler.collect(); bAnswered = true; return r })
  let release = (): void => {}
  serve(hung, mesh, 'stats.node', async () => await new Promise<NodeStats>((resolve, reject) => { release = () => reject(new Error('test over')) }))
  t.teardown(() => release())

  const askedAt = clock.now()
  let view: StatsView | undefined
  // The asker is not in the table: only the members' answers are asked for.
  const asked = clusterStats({ transport: asker, membership: { id: 'asker', table: () => table }, sampler: { collect: async () => { throw new Error('not asked') } }, log: silentLogger, clock })
    .then((v) => { view = v })
  // b measures its CPU over a real window: virtual time waits for that (as drive() would).
  await waitFor(() => bAnswered, { what: 'b to answer' })
  await clock.runUntil(askedAt + statsTimeoutMs - 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.is(view, undefined, 'still waiting for the hung member within the time limit')

  await clock.runUntil(askedAt + statsTimeoutMs)
  await asked
  t.is(view?.at, askedAt + statsTimeoutMs, 'the view is stamped with the virtual time')
  const rows = Object.fromEntries((view?.nodes ?? []).map((r) => [r.node, r]))
  t.like(rows.b, { status: 'ok', at: askedAt })
  t.like(rows.hung, { status: 'unreachable' })
  t.regex(rows.hung?.status === 'unreachable' ? rows.hung.reason : '', /within 3 s|timed out|timeout/i)
})
