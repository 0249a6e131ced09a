/**
 * The proxy on a virtual clock: one node in this process (the memory transport, its real
 * membership, hubs and spec layers, a spec directory, all on one VirtualClock). A port it
 * cannot publish is tried again when virtual time has passed the retry wait, and not before.
 */
import test from 'ava'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../node/clock/virtual'
import { spec } from '../node/desired'
import { hubs } from '../node/hubs'
import { loadIdentity } from '../node/keys'
import { silentLogger } from '../node/log'
import { membership } from '../node/membership'
import { proxy } from '../node/proxy'
import { memoryNetwork } from '../plugins/transport-memory'
import { makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

/** publish.ts's wait before a port that could not be listened on is tried again. */
const RETRY_MS = 5000

test('proxy on a virtual clock: a published port that was taken is tried again once the retry wait has passed on the clock, not before', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-proxy-clock-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const keys = await makeKeys(join(dir, 'keys'), 'test')
  const id = await loadIdentity({ keys })
  const identity = { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }

  // Something outside origin holds the port at first.
  const squatter = net.createServer()
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve))
  const port = (squatter.address() as net.AddressInfo).port
  t.teardown(() => { squatter.close() })

  const specDir = join(dir, 'spec')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1 }))
  await writeFile(join(specDir, 'services', 'web.json'), JSON.stringify({ run: { command: 'node', args: ['web.js'] }, placement: { kind: 'every' }, publish: { port } }))

  const clock = new VirtualClock(1_700_000_000_000)
  const transport = memoryNetwork().transport({ listen: '127.0.0.1:7400' })({ identity, log: silentLogger, clock })
  const self = { id: 'n1', characteristics: { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: clock.now() } }
  const m = membership({ seeds: [] })({ transport, log: silentLogger, self, clock })
  const h = hubs({ policy: { count: 1 } })({ membership: m, log: silentLogger })
  const s = spec({ source: { kind: 'dir', dir: specDir }, dataDir: join(dir, 'data') })({ transport, membership: m, hubs: h, log: silentLogger, cluster: 'test', clock })
  const p = proxy()({ identity, transport, membership: m, hubs: h, spec: s, local: () => [], log: silentLogger, clock })
  t.teardown(async () => {
    await p.stop()
    await s.stop()
    await h.stop()
    await m.stop().catch(() => {})
    await transport.stop()
  })
  await transport.start()
  await m.start()
  await h.start()
  await s.start()
  await waitFor(() => s.current()?.spec.services.web?.publish?.port === port, { what: 'the spec to be applied' })
  await p.start()

  const state = (): string => p.published().find((x) => x.port === port)?.state ?? 'not published'
  await waitFor(() => /already in use/.test(state()), { what: 'the port to be reported taken' })
  // Virtual time has stood still since the start: the retry was set for RETRY_MS from now.
  const failedAt = clock.now()
  await new Promise<void>((resolve) => squatter.close(() => resolve()))

  await clock.runUntil(failedAt + RETRY_MS - 1)
  t.regex(state(), /already in use/, 'not tried again before the wait has passed on the clock')
  await clock.runUntil(failedAt + RETRY_MS)
  // Within 3 s of real time: on real timers the retry would take 5.
  await waitFor(() => state() === 'listening', { timeoutMs: 3000, what: 'the port to be published on the retry' })
  const reached = await new Promise<boolean>((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true) })
    c.on('error', () => resolve(false))
  })
  t.true(reached, 'the node listens on the port now')
})
