import test from 'ava'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../node/log'
import { discovery } from '../../plugins/discovery-file'
import { waitFor } from '../helpers/wait'

const components = (dataDir: string) => ({ log: silentLogger, dataDir, nodeId: 'n1', listenPort: 7400 })

test('discovery-file: peers from the file with the seeds; an edit and a replacement by rename are seen', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-discovery-file-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'peers')
  await writeFile(path, '# the cluster\n10.0.0.1:7400\nnot an address\n10.0.0.2:7400 # second\n')
  const d = discovery({ path, seeds: ['10.0.0.9:7400'], intervalMs: 60_000 })(components(dir))
  await d.start()
  t.teardown(async () => await d.stop())
  t.deepEqual(d.peers(), ['10.0.0.9:7400', '10.0.0.1:7400', '10.0.0.2:7400'])
  const changes: string[][] = []
  d.events.on('change', (p: string[]) => changes.push(p))
  await writeFile(path, '10.0.0.3:7400\n')
  await waitFor(() => d.peers().includes('10.0.0.3:7400'), { what: 'the edit to be seen' })
  t.deepEqual(d.peers(), ['10.0.0.9:7400', '10.0.0.3:7400'])
  await writeFile(join(dir, 'peers.new'), '10.0.0.4:7400\n10.0.0.5:7400\n')
  await rename(join(dir, 'peers.new'), path)
  await waitFor(() => d.peers().includes('10.0.0.5:7400'), { what: 'the replaced file to be seen' })
  t.deepEqual(changes.at(-1), ['10.0.0.9:7400', '10.0.0.4:7400', '10.0.0.5:7400'])
})

test('discovery-file: a missing file finds nobody until it appears (the backstop re-read finds it too)', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-discovery-file-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'peers')
  const d = discovery({ path, intervalMs: 100 })(components(dir))
  await d.start()
  t.teardown(async () => await d.stop())
  t.deepEqual(d.peers(), [])
  await writeFile(path, '10.0.0.7:7400\n')
  await waitFor(() => d.peers().length === 1, { what: 'the new file to be read' })
  t.deepEqual(d.peers(), ['10.0.0.7:7400'])
})
