import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { gitDiscovery } from '../../node/discovery'
import { createLogger } from '../../node/log'
import { startGitServer } from '../helpers/git-server'
import { waitFor } from '../helpers/wait'

async function setup (t: { teardown: (fn: () => Promise<void>) => void }, token?: string) {
  const gs = await startGitServer({ token })
  const dataDir = await mkdtemp(join(os.tmpdir(), 'origin-disc-git-'))
  const lines: string[] = []
  const log = createLogger('discovery', { level: 'debug', sinks: [{ write: (l) => lines.push(l) }] })
  t.teardown(async () => { await gs.stop(); await rm(dataDir, { recursive: true, force: true }) })
  return { gs, lines, components: { log, dataDir, nodeId: 'n1', listenPort: 7400 } }
}

test('discovery git: the peers file is read at its path; bad lines are skipped and logged by number', async (t) => {
  const { gs, lines, components } = await setup(t)
  await gs.seed({ 'prod/peers': '# prod\n10.0.0.4:7400\nnot-a-peer\n10.0.0.5:7400 # b\n', 'README.md': 'peers\n' })
  const d = gitDiscovery({ url: gs.url, path: 'prod/peers' })(components)
  await d.start()
  await d.stop()
  t.deepEqual(d.peers(), ['10.0.0.4:7400', '10.0.0.5:7400'])
  t.true(lines.some((l) => /line 3 is not host:port: "not-a-peer"/.test(l)), lines.join('\n'))
  t.true(gs.requestsBy('origin-node/n1') > 0)
})

test('discovery git: the file is polled and a push is seen', async (t) => {
  const { gs, components } = await setup(t)
  await gs.seed({ peers: '10.0.0.4:7400\n' })
  const d = gitDiscovery({ url: gs.url, path: 'peers', ref: 'main', intervalMs: 100 })(components)
  t.teardown(async () => await d.stop())
  await d.start()
  t.deepEqual(d.peers(), ['10.0.0.4:7400'])
  // Polls go on (each asks where main points: info/refs, then ls-refs).
  gs.resetCount()
  await waitFor(() => gs.requestsBy((r) => r.path.includes('info/refs')) >= 3, { what: 'three polls' })
  const w = await gs.workdir()
  await w.write('peers', '10.0.0.4:7400\n10.0.0.5:7400\n')
  await w.commit('add b')
  await w.push()
  await waitFor(() => d.peers().length === 2, { what: 'the pushed peer' })
  t.deepEqual(d.peers(), ['10.0.0.4:7400', '10.0.0.5:7400'])
})

test('discovery git: a token is sent; without it the lookup fails, is logged, and finds nobody', async (t) => {
  const { gs, lines, components } = await setup(t, 's3cret-token')
  await gs.seed({ peers: '10.0.0.4:7400\n' })
  const good = gitDiscovery({ url: gs.url, path: 'peers', token: 's3cret-token' })(components)
  await good.start()
  await good.stop()
  t.deepEqual(good.peers(), ['10.0.0.4:7400'])
  const bad = gitDiscovery({ url: gs.url, path: 'peers' })(components)
  await bad.start()
  await bad.stop()
  t.deepEqual(bad.peers(), [])
  t.true(lines.some((l) => /warn .*lookup failed/.test(l)), lines.join('\n'))
})

test('discovery git: a missing file is a failed lookup naming the path', async (t) => {
  const { gs, lines, components } = await setup(t)
  await gs.seed({ other: 'x\n' })
  const d = gitDiscovery({ url: gs.url, path: 'prod/peers' })(components)
  await d.start()
  await d.stop()
  t.deepEqual(d.peers(), [])
  t.true(lines.some((l) => /has no file prod\/peers/.test(l)), lines.join('\n'))
})
