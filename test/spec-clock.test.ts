/**
 * The spec layer on a virtual clock: one node (the memory transport, its real membership
 * and hubs layers, all on a VirtualClock) following a real git server. Its polls of the
 * remote come when virtual time passes the poll interval, not before, and the times it
 * records (applied at, rejected at) are the clock's.
 */
import test, { type ExecutionContext } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../node/clock/virtual'
import { spec, type SpecLayer } from '../node/desired'
import { hubs } from '../node/hubs'
import { loadIdentity } from '../node/keys'
import { silentLogger } from '../node/log'
import { membership } from '../node/membership'
import { memoryNetwork } from '../plugins/transport-memory'
import { makeKeys } from './helpers/cluster'
import { startGitServer, type GitServer } from './helpers/git-server'
import { waitFor } from './helpers/wait'

const POLL_MS = 60_000
/** The poll interval is jittered by ±20 %. */
const EARLIEST = Math.round(POLL_MS * 0.8)
const LATEST = Math.round(POLL_MS * 1.2)
const clusterJson = (minNodes: number): string => JSON.stringify({ name: 'test', minNodes })

let keys = ''
test.before(async () => { keys = await makeKeys(await mkdtemp(join(os.tmpdir(), 'origin-spec-clock-keys-')), 'test') })
test.after.always(async () => { if (keys !== '') await rm(keys, { recursive: true, force: true }) })

interface Node { layer: SpecLayer, clock: VirtualClock, startedAt: number, git: GitServer }

/** One hub on `clock`, polling `git` every POLL_MS; everything it started is stopped at teardown. */
async function hubNode (t: ExecutionContext, git: GitServer): Promise<Node> {
  const clock = new VirtualClock(1_700_000_000_000)
  const id = await loadIdentity({ keys })
  const identity = { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
  const data = await mkdtemp(join(os.tmpdir(), 'origin-spec-clock-'))
  const transport = memoryNetwork().transport({ listen: 'mem-1:7400' })({ identity, log: silentLogger, clock })
  const self = { id: 'n1', characteristics: { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: clock.now() } }
  const m = membership({ seeds: [] })({ transport, log: silentLogger, self, clock })
  const h = hubs({ policy: { count: 1 } })({ membership: m, log: silentLogger })
  const layer = spec({ source: { kind: 'git', url: git.url, pollIntervalMs: POLL_MS }, dataDir: data })({ transport, membership: m, hubs: h, log: silentLogger, cluster: 'test', clock })
  t.teardown(async () => {
    await layer.stop()
    await h.stop()
    await m.stop().catch(() => {})
    await transport.stop()
    await rm(data, { recursive: true, force: true })
  })
  await transport.start()
  await m.start()
  await h.start()
  const startedAt = clock.now()
  await layer.start()
  return { layer, clock, startedAt, git }
}

async function push (git: GitServer, minNodes: number, message: string): Promise<string> {
  const work = await git.workdir()
  await work.write('cluster.json', clusterJson(minNodes))
  const commit = await work.commit(message)
  await work.push()
  return commit
}

test.serial('spec on a virtual clock: a hub polls its remote once virtual time passes the interval, and not before', async (t) => {
  const git = await startGitServer()
  t.teardown(async () => { await git.stop() })
  const first = await git.seed({ 'cluster.json': clusterJson(1) })
  const { layer, clock, startedAt } = await hubNode(t, git)
  // Becoming a hub, it looks at once: no virtual time needs to pass for that.
  await waitFor(() => layer.current()?.version === first, { what: 'the first commit to be applied' })
  t.is(layer.current()?.appliedAt, startedAt, 'applied at the virtual time, which stood still')

  const second = await push(git, 2, 'second')
  await clock.runUntil(startedAt + EARLIEST - 1)
  // No poll took it meanwhile: a sync by hand finds it new (after a poll, it would be `unchanged`).
  const byHand = await layer.sync()
  t.like(byHand[0], { outcome: 'applied', commit: second })
  t.is(layer.current()?.appliedAt, startedAt + EARLIEST - 1)

  const third = await push(git, 3, 'third')
  const realStart = Date.now()
  await clock.runUntil(startedAt + LATEST)
  await waitFor(() => layer.current()?.version === third, { what: 'the poll to apply the third commit' })
  const appliedAt = layer.current()?.appliedAt ?? 0
  t.true(appliedAt >= startedAt + EARLIEST && appliedAt <= startedAt + LATEST, `applied ${appliedAt - startedAt} ms (virtual) after the poll began`)
  t.true(Date.now() - realStart < EARLIEST, 'virtual time ran faster than real time')
})

test.serial('spec on a virtual clock: a rejection is stamped with the virtual time', async (t) => {
  const git = await startGitServer()
  t.teardown(async () => { await git.stop() })
  await git.seed({ 'cluster.json': clusterJson(1) })
  const { layer, clock, startedAt } = await hubNode(t, git)
  await waitFor(() => layer.current() !== undefined, { what: 'the first commit to be applied' })
  const work = await git.workdir()
  await work.write('cluster.json', JSON.stringify({ name: 'another-cluster', minNodes: 1 }))
  const bad = await work.commit('wrong cluster')
  await work.push()
  await clock.runUntil(startedAt + LATEST)
  await waitFor(() => layer.lastRejected()?.version === bad, { what: 'the bad commit to be rejected' })
  const at = layer.lastRejected()?.at ?? 0
  t.true(at >= startedAt + EARLIEST && at <= startedAt + LATEST, `rejected ${at - startedAt} ms (virtual) after start`)
})
