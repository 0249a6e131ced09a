/**
 * The local API on a virtual clock: one node (memory transport, its real membership and
 * hubs layers, all on one VirtualClock) serving real HTTP on loopback. A refused caller is
 * logged at most once per 10 s, and those 10 s are the clock's.
 */
import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { localApi } from '../node/api'
import { VirtualClock } from '../node/clock/virtual'
import { hubs } from '../node/hubs'
import { loadIdentity } from '../node/keys'
import { silentLogger, type Logger } from '../node/log'
import { membership } from '../node/membership'
import { memoryNetwork } from '../plugins/transport-memory'
import { makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

let keys = ''
test.before(async () => { keys = await makeKeys(await mkdtemp(join(os.tmpdir(), 'origin-api-clock-keys-')), 'test') })
test.after.always(async () => { if (keys !== '') await rm(keys, { recursive: true, force: true }) })

function recording (): Logger & { warnings: string[] } {
  const warnings: string[] = []
  const log: Logger & { warnings: string[] } = { warnings, debug () {}, info () {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m), child: () => log }
  return log
}

test.serial('api on a virtual clock: a refused caller is logged again only once 10 s of virtual time passed', async (t) => {
  const clock = new VirtualClock(1_700_000_000_000)
  const id = await loadIdentity({ keys })
  const identity = { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
  const transport = memoryNetwork().transport({ listen: 'mem-1:7400' })({ identity, log: silentLogger, clock })
  const self = { id: 'n1', characteristics: { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: clock.now() } }
  const m = membership({ seeds: [] })({ transport, log: silentLogger, self, clock })
  const h = hubs()({ membership: m, log: silentLogger })
  const log = recording()
  const api = localApi()({ membership: m, hubs: h, log, clock })
  t.teardown(async () => { await api.stop(); await h.stop(); await m.stop().catch(() => {}); await transport.stop() })
  await transport.start()
  await m.start()
  await h.start()
  await api.start()

  const refused = async (claim: string): Promise<number> => (await fetch(`${api.url}/v1/self`, { headers: { authorization: `Bearer ${claim}.0000` } })).status
  const about = (claim: string): string[] => log.warnings.filter((w) => w.includes(`a key for ${claim} that this node did not issue`))
  t.is(await refused('web-0'), 401)
  await waitFor(() => about('web-0').length === 1, { what: 'the first refusal to be logged' })
  const t0 = clock.now()

  await clock.runUntil(t0 + 9_999)
  t.is(await refused('web-0'), 401)
  // Another claim is another caller: logged at once, after the repeat was decided.
  t.is(await refused('web-1'), 401)
  await waitFor(() => about('web-1').length === 1, { what: 'the other caller\'s refusal to be logged' })
  t.is(about('web-0').length, 1, 'the same caller within 10 s of virtual time is not logged again')

  await clock.runUntil(t0 + 10_000)
  t.is(await refused('web-0'), 401)
  await waitFor(() => about('web-0').length === 2, { what: 'the refusal to be logged again 10 s later, in virtual time' })
})
