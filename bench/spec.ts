/**
 * Spec benchmarks: time from `git push` to every node running the new commit, with the
 * webhook and with polling, and requests to the git server per spec change.
 */
import { defaultConfig } from '../node/config'
import { createHmac } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import https from 'node:https'
import { join } from 'node:path'
import { TestCluster } from '../test/helpers/cluster'
import { startGitServer, type GitServer } from '../test/helpers/git-server'
import { waitFor } from '../test/helpers/wait'
import { connectCluster, type Cluster } from '../repl/client'
import { row, summarize } from './stats'

// The production defaults (node/config), as a user's image.json would leave them.
const membership: Record<string, number> = defaultConfig().membership
const secret = 'bench-webhook-secret'
const pollIntervalMs = 1000
const rounds = 8

async function postWebhook (address: string, ca: string): Promise<void> {
  const body = '{}'
  const [host, port] = address.split(':')
  await new Promise<void>((resolve, reject) => {
    const req = https.request({
      host, port: Number(port), path: '/hooks/git', method: 'POST', ca, checkServerIdentity: () => undefined,
      headers: { 'x-hub-signature-256': 'sha256=' + createHmac('sha256', secret).update(body).digest('hex') }
    }, (res) => { res.resume(); res.on('end', () => resolve()) })
    req.on('error', reject)
    req.end(body)
  })
}

async function allRun (client: Cluster, commit: string, size: number): Promise<void> {
  await waitFor(async () => {
    const view = await client.spec()
    return view.nodes.filter((n) => n.status === 'alive' && n.spec === commit).length === size
  }, { intervalMs: 20, timeoutMs: 60_000, what: 'every node to run the commit' })
}

async function measure (size: number, mode: 'webhook' | 'polling'): Promise<void> {
  const git: GitServer = await startGitServer()
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    const cluster = (n: number): string => JSON.stringify({ name: 'bench', minNodes: 1, hubs: { count: 3 }, revokedSerials: [], note: undefined, ...(n > 0 ? { minNodes: 1 + (n % 2) } : {}) })
    const first = await git.seed({ 'cluster.json': cluster(0) })
    const image = { spec: { url: git.url, pollIntervalMs: mode === 'polling' ? pollIntervalMs : 3_600_000, webhookSecret: secret } }
    const names = Array.from({ length: size }, (_, i) => `n${i + 1}`)
    for (const name of names) await c.start({ name, seeds: name === 'n1' ? [] : ['n1'], membership, logLevel: 'info', image })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node('n1').address }), { what: 'n1' })
    await allRun(client, first, size)
    const ca = await readFile(join(c.keys, 'ca.crt'), 'utf8')
    const hub = (await client.hubs()).hubs[0]
    const work = await git.workdir()
    const times: number[] = []
    const requests: number[] = []
    for (let i = 1; i <= rounds; i++) {
      // Push at a random point of the poll cycle: right after the last change the hubs'
      // polls are in phase with the rounds, which would measure the worst case every time.
      if (mode === 'polling') await new Promise((resolve) => setTimeout(resolve, Math.random() * pollIntervalMs))
      await work.write('cluster.json', cluster(i))
      const commit = await work.commit(`round ${i}`)
      git.resetCount()
      await work.push()
      const t0 = performance.now()
      if (mode === 'webhook') await postWebhook(c.node(hub).address, ca)
      await allRun(client, commit, size)
      times.push(performance.now() - t0)
      requests.push(git.requestsBy('origin-node/'))
    }
    client.close()
    const s = summarize(times)
    row(`${size} nodes, ${mode === 'webhook' ? 'webhook' : `polling every ${pollIntervalMs} ms`}: push to all running (p50 / max)`, `${s.p50.toFixed(0)} / ${Math.max(...times).toFixed(0)} ms`)
    // Polls where nothing changed happen meanwhile too; count what the change cost per round.
    row(`${size} nodes, ${mode}: requests to the git server per change`, `${(requests.reduce((a, b) => a + b, 0) / rounds).toFixed(1)}`, '(hubs only: should not grow with nodes)')
  } finally {
    await c.cleanup()
    await git.stop()
  }
}

export async function benchSpec (): Promise<void> {
  console.log(`\nspec changes (${rounds} pushes each; the git server is git http-backend on loopback)`)
  for (const size of [3, 10]) {
    await measure(size, 'webhook')
    await measure(size, 'polling')
  }
}
