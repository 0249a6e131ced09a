/**
 * A remembered rejection keeps its structure across a restart: a node (in-memory transport,
 * spec from a directory) rejects a bad service file, is stopped and started again on the
 * same data dir, and an operator's `cluster.spec` still gets each problem as data (file,
 * JSON path, message), taken from DATA/spec/rejected.json, not from a new evaluation; a
 * rejected.json from before problems were kept (lines only) gives the same structure.
 */
import test from 'ava'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { startNode } from '../../node/assembly'
import type { SpecError } from '../../node/desired/contract'
import { loadIdentity } from '../../node/keys'
import { operator } from '../../node/protocol/operator'
import { call } from '../../node/protocol/table'
import { memoryNetwork } from '../../plugins/transport-memory'
import { fastMembership, makeKeys } from '../helpers/cluster'
import { waitFor } from '../helpers/wait'

let dir = ''
let keys = ''
test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-desired-restart-'))
  keys = await makeKeys(join(dir, 'keys'), 'test')
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

interface Stored { version: string, key: string, problems?: SpecError[], errors?: string[], at: number }

/** Start the node on its data dir, wait for its rejection, and read it as an operator does, over the transport. */
async function rejectionSeenByOperator (specDir: string, data: string): Promise<{ version: string, problems: SpecError[] }> {
  const net = memoryNetwork()
  const node = await startNode({
    config: { cluster: 'test', listen: '127.78.9.1:7400', seeds: [], data, name: 'n1', labels: {}, characteristics: { cpus: 2, memoryMb: 1024 }, membership: fastMembership, hubs: {}, log: { level: 'error' }, specDir },
    keys,
    layers: { transport: net.transport }
  })
  try {
    await waitFor(() => node.spec.lastRejected() !== undefined, { what: 'the bad spec to be rejected' })
    const op = await loadIdentity({ keys, as: 'op' })
    const conn = await net.connect(node.address, { ca: op.ca, cert: op.cert, key: op.key, cluster: 'test' })
    try {
      const r = (await call(conn, operator, 'cluster.spec')).lastRejected
      if (r === undefined) throw new Error('cluster.spec says no rejection')
      return { version: r.version, problems: r.problems }
    } finally { conn.close() }
  } finally { await node.stop() }
}

test('desired: a remembered rejection reaches the operator with its file, path and message after a restart, from rejected.json old or new', async (t) => {
  const specDir = join(dir, 'spec')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1 }))
  await writeFile(join(specDir, 'services', 'web.json'), JSON.stringify({ run: { command: 'true' }, placement: { kind: 'replicas', count: 'two' } }))
  const data = join(dir, 'n1')
  const file = join(data, 'spec', 'rejected.json')

  const first = await rejectionSeenByOperator(specDir, data)
  const problem = first.problems.find((p) => p.file === 'services/web.json')
  t.like(problem, { file: 'services/web.json', path: '/placement/count' })
  const stored = JSON.parse(await readFile(file, 'utf8')) as { rejected: Stored[] }
  const entry = stored.rejected.find((e) => e.version === first.version)
  t.deepEqual(entry?.problems, first.problems, 'rejected.json holds the problems as data')
  if (entry === undefined) return

  // Another message than evaluating would give: what the operator sees after the restart came from the file.
  const remembered = first.problems.map((p) => ({ ...p, message: `${p.message} (remembered)` }))
  await writeFile(file, JSON.stringify({ rejected: [{ ...entry, problems: remembered }] }))
  const second = await rejectionSeenByOperator(specDir, data)
  t.is(second.version, first.version)
  t.deepEqual(second.problems, remembered)

  // As a node before this change wrote it: the lines only.
  await writeFile(file, JSON.stringify({ rejected: [{ version: entry.version, key: entry.key, at: entry.at, errors: ['services/web.json:/placement/count: remembered as a line'] }] }))
  const third = await rejectionSeenByOperator(specDir, data)
  t.deepEqual(third.problems, [{ file: 'services/web.json', path: '/placement/count', message: 'remembered as a line' }])
})
