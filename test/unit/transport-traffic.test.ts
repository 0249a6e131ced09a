import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { loadIdentity } from '../../node/keys'
import { silentLogger } from '../../node/log'
import { encodeFrame } from '../../node/transport/frames'
import { memoryNetwork } from '../../plugins/transport-memory'
import { makeKeys } from '../helpers/cluster'

let dir = ''
test.before(async () => { dir = await mkdtemp(join(os.tmpdir(), 'origin-traffic-')) })
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

test('traffic: a unary call counts its request and its answer, each way, under its method, on each transport; an unknown method is counted too', async (t) => {
  await makeKeys(dir, 'test')
  const id = await loadIdentity({ keys: dir })
  const identity = { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
  const net = memoryNetwork()
  const server = net.transport({ listen: 'mem-1:7400' })({ identity, log: silentLogger })
  const client = net.transport({ listen: 'mem-2:7400' })({ identity, log: silentLogger })
  server.handle({ kind: 'unary', name: 'test.traffic', role: 'node', payload: { type: 'object' }, handler: (p: { n: number }) => ({ twice: p.n * 2 }) })
  await server.start()
  await client.start()
  t.teardown(async () => { await client.stop(); await server.stop() })
  const conn = await client.connect(server.address)
  t.is(client.traffic('test.traffic'), undefined, 'nothing counted before the first call')
  t.deepEqual(await conn.call('test.traffic', { n: 21 }), { twice: 42 })
  t.deepEqual(await conn.call('test.traffic', { n: 1 }), { twice: 2 })
  // Each transport counts its own side: the client sent the requests and received the answers.
  const bytes = encodeFrame({ t: 'req', id: 1, m: 'test.traffic', p: { n: 21 } }).length + encodeFrame({ t: 'res', id: 1, v: { twice: 42 } }).length +
    encodeFrame({ t: 'req', id: 2, m: 'test.traffic', p: { n: 1 } }).length + encodeFrame({ t: 'res', id: 2, v: { twice: 2 } }).length
  const requests = encodeFrame({ t: 'req', id: 1, m: 'test.traffic', p: { n: 21 } }).length + encodeFrame({ t: 'req', id: 2, m: 'test.traffic', p: { n: 1 } }).length
  t.deepEqual(client.traffic('test.traffic'), { sent: requests, received: bytes - requests })
  t.deepEqual(server.traffic('test.traffic'), { sent: bytes - requests, received: requests })
  await t.throwsAsync(conn.call('test.nowhere'), { message: /no method "test.nowhere"/ })
  const request = encodeFrame({ t: 'req', id: 3, m: 'test.nowhere' }).length
  t.deepEqual(client.traffic('test.nowhere'), { sent: request, received: 0 }, 'the error is not an answer')
  t.deepEqual(server.traffic('test.nowhere'), { sent: 0, received: request })
})
