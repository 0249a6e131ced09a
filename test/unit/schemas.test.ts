/**
 * Validators compile on their first use (node/validate.ts), so a schema ajv refuses would
 * otherwise show only when its first value comes. This compiles every one a started node
 * has made — image.json's, frames', each RPC method's payload, the local API's, the
 * plugins' — and fails on the first bad schema.
 */
import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { startNode } from '../../node/assembly'
import { compileAll } from '../../node/validate'
import '../../plugins/discovery-file'
import '../../plugins/lease-etcd'
import '../../plugins/lease-redis'
import '../../repl/client'
import { memoryNetwork } from '../../plugins/transport-memory'
import { fastMembership, makeKeys } from '../helpers/cluster'

test('schemas: every validator a started node has made compiles', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-schemas-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const keys = await makeKeys(join(dir, 'keys'), 'test')
  const node = await startNode({
    config: { cluster: 'test', listen: '127.78.1.1:7400', seeds: [], data: join(dir, 'n1'), name: 'n1', labels: {}, characteristics: { cpus: 2, memoryMb: 1024 }, membership: fastMembership, hubs: {}, log: { level: 'error' } },
    keys,
    layers: { transport: memoryNetwork().transport }
  })
  t.teardown(async () => { await node.stop() })
  const compiled = compileAll()
  t.true(compiled > 20, `compiled ${compiled} validators not used yet (the node's methods alone are more than 20)`)
  t.is(compileAll(), 0, 'each is compiled once')
})
