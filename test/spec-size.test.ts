/** Commits of any size reach every node in bounded frames; a commit over the spec's size limit is refused naming its largest files. */
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { TestCluster } from './helpers/cluster'
import { startGitServer } from './helpers/git-server'
import { waitFor } from './helpers/wait'

/** `bytes` of incompressible text (git would compress zeros to nothing). */
const noise = (bytes: number): string => randomBytes(bytes * 3 / 4).toString('base64')

const clusterJson = (extra: Record<string, unknown> = {}): string => JSON.stringify({ name: 'test', minNodes: 1, hubs: { count: 1 }, ...extra })

test.serial('spec size: a commit with a 6 MiB file reaches the followers; one over maxCommitMb is rejected naming the file while every node keeps the last good one', async (t) => {
  const c = await TestCluster.create()
  const git = await startGitServer()
  t.teardown(async () => { await c.cleanup(); await git.stop() })
  await git.seed({ 'cluster.json': clusterJson({ maxCommitMb: 8 }) })
  const image = { spec: { url: git.url, pollIntervalMs: 300 } }
  await c.start({ name: 'a', memoryMb: 4000, hubs: { count: 1 }, image })
  await c.start({ name: 'b', memoryMb: 1000, hubs: { count: 1 }, image })
  await c.start({ name: 'c', memoryMb: 1000, hubs: { count: 1 }, image })
  await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  const work = await git.workdir()
  await work.write('assets/big.bin', noise(6 * 2 ** 20))
  const big = await work.commit('a 6 MiB asset')
  await work.push()
  const client = await c.client('a')
  await c.explainFailure(async () => await waitFor(async () => (await client.spec()).nodes.every((n) => n.spec === big), { what: 'every node to run the 6 MiB commit', timeoutMs: 30_000 }))
  t.pass('followers took a commit with an object larger than a frame')

  await work.write('assets/huge.bin', noise(9 * 2 ** 20))
  const huge = await work.commit('a 9 MiB asset: over the 8 MiB limit with the rest')
  await work.push()
  const rejected = await waitFor(async () => { const s = await client.spec(); return s.lastRejected?.version === huge ? s.lastRejected : undefined }, { what: 'the oversized commit to be rejected' })
  t.regex(rejected.errors.join('\n'), /over the 8\.0 MiB limit \(maxCommitMb in cluster\.json\); largest files: assets\/huge\.bin \(9\.0 MiB\)/)
  t.true((await client.spec()).nodes.every((n) => n.spec === big), 'every node keeps the last good commit')
})
