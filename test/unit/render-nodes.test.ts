import test from 'ava'
import { inspect } from 'node:util'
import type { NodeRow } from '../../node/control'
import { certificateExpiry } from '../../node/keys/expiry'
import { NodeTable } from '../../repl/render'

const row = (id: string, daysLeft: number): NodeRow => ({
  id, address: `${id}:7400`, status: 'alive', hub: false, cpus: 2, memoryMb: 2048, arch: 'x64', labels: {}, startedAt: 0, incarnation: 1,
  containment: 'pid-namespace',
  certificate: certificateExpiry({ serial: `AB${id}`, notAfter: new Date(Date.now() + daysLeft * 86_400_000) }, Date.now())
})

test('cluster.nodes(): a certificate close to its end is a line under the table that says what to do; a fresh one says nothing', (t) => {
  const text = inspect(NodeTable.fromRows([row('a', 300), row('b', 5)]))
  t.regex(text, /^b: certificate ABb expires in \d+ days? \(.*\): build a new image \(origin build\), roll it out, then revoke serial ABb$/m)
  t.notRegex(text, /^a: /m)
})
