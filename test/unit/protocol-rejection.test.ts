/**
 * A spec rejection keeps its structure across the wire: a node on the in-memory transport
 * rejects a spec directory with a bad service file, and an operator's `cluster.spec` (the
 * same frames as over a socket) gets each problem as data (file, JSON path, message) and
 * an E_SPEC_INVALID OriginError the REPL's SpecReport rebuilds with fromJSON.
 */
import test from 'ava'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { startNode } from '../../node/assembly'
import { OriginError } from '../../node/errors'
import { loadIdentity } from '../../node/keys'
import { problemsOf } from '../../node/protocol/errors'
import { operator } from '../../node/protocol/operator'
import { call } from '../../node/protocol/table'
import { memoryNetwork } from '../../plugins/transport-memory'
import { SpecReport } from '../../repl/render'
import { fastMembership, makeKeys } from '../helpers/cluster'
import { waitFor } from '../helpers/wait'

let dir = ''
let keys = ''
test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-protocol-rejection-'))
  keys = await makeKeys(join(dir, 'keys'), 'test')
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

test('protocol: a spec rejection reaches the operator as data (file, path, message) and as an E_SPEC_INVALID OriginError', async (t) => {
  const specDir = join(dir, 'spec')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1 }))
  await writeFile(join(specDir, 'services', 'web.json'), JSON.stringify({ run: { command: 'true' }, placement: { kind: 'replicas', count: 'two' } }))
  const net = memoryNetwork()
  const node = await startNode({
    config: { cluster: 'test', listen: '127.78.1.1:7400', seeds: [], data: join(dir, 'n1'), name: 'n1', labels: {}, characteristics: { cpus: 2, memoryMb: 1024 }, membership: fastMembership, hubs: {}, log: { level: 'error' }, specDir },
    keys,
    layers: { transport: net.transport }
  })
  t.teardown(async () => { await node.stop() })
  await waitFor(() => node.spec.lastRejected() !== undefined, { what: 'the bad spec to be rejected' })

  const op = await loadIdentity({ keys, as: 'op' })
  const conn = await net.connect(node.address, { ca: op.ca, cert: op.cert, key: op.key, cluster: 'test' })
  t.teardown(() => { conn.close() })
  const view = await call(conn, operator, 'cluster.spec')
  const r = view.lastRejected
  if (r === undefined) { t.fail('cluster.spec says no rejection'); return }
  const problem = r.problems.find((p) => p.file === 'services/web.json')
  t.like(problem, { file: 'services/web.json', path: '/placement/count' })
  t.true(typeof problem?.message === 'string' && problem.message.length > 0)
  t.true(r.errors.some((line) => line.startsWith('services/web.json') && line.includes(problem?.message ?? '?')), 'the line of text says the same problem')

  const report = new SpecReport(view)
  t.true(report.rejection instanceof OriginError)
  t.is(report.rejection?.code, 'E_SPEC_INVALID')
  t.deepEqual(problemsOf(report.rejection!), r.problems)
  t.is(report.rejection?.data.version, r.version)
  t.deepEqual(OriginError.fromJSON(JSON.parse(JSON.stringify(report.rejection))).data, report.rejection?.data, 'it survives toJSON and back')
})
