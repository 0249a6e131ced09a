import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { NodeStats, NodeStatsRow, StatsView } from '../node/control/stats'
import { cliPath } from '../node/launch'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

const run = promisify(execFile)

/** Holds ~100 MB resident (filled, so the pages are real) and burns CPU half of each 100 ms. */
const hog = {
  run: { command: 'node', args: ['-e', "const b = Buffer.alloc(100 * 2 ** 20, 1); console.log('hog holds', b.length); setInterval(() => { const end = Date.now() + 50; while (Date.now() < end); }, 100)"] },
  placement: { kind: 'singleton' }
}
const web = {
  run: { command: 'node', args: ['-e', "require('http').createServer((q, s) => s.end('hi')).listen(process.env.PORT)"] },
  placement: { kind: 'every' }
}

const ok = (rows: NodeStatsRow[]): NodeStats[] => rows.filter((r): r is NodeStats => r.status === 'ok')

test.serial('stats: every node answers for itself, and a service using memory and CPU shows it', async (t) => {
  const s = await specDirCluster(t)
  await s.write('services/hog.json', hog)
  await s.write('services/web.json', web)
  for (const name of ['a', 'b', 'c']) await s.c.start({ name, image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  const client = await s.c.client('b')
  const stats = await s.c.explainFailure(async () => await waitFor(async () => {
    const r = await client.stats()
    const hogRow = ok(r.nodes).flatMap((n) => n.instances).find((i) => i.service === 'hog')
    return r.nodes.length === 3 && ok(r.nodes).length === 3 && (hogRow?.memoryMb ?? 0) > 90 && ok(r.nodes).every((n) => n.instances.some((i) => i.service === 'web' && i.state === 'ready')) ? r : undefined
  }, { what: 'stats from 3 nodes with the hog holding its memory and web ready everywhere', timeoutMs: 30_000 }))
  t.is(stats.answeredBy, 'b')
  t.deepEqual(stats.nodes.map((n) => n.node), ['a', 'b', 'c'])
  for (const n of ok(stats.nodes)) {
    t.is(n.address, s.c.node(n.node).address, `${n.node} answers for itself`)
    t.true(n.cpus > 0 && n.cpuPercent >= 0 && n.cpuPercent <= 100, `${n.node} cpu ${n.cpuPercent}`)
    t.true(n.memoryUsedMb > 0 && n.memoryUsedMb <= n.memoryTotalMb)
    t.true(n.nodeRssMb > 20 && n.nodeRssMb < 1000, `${n.node} rss ${n.nodeRssMb}`)
    t.true((n.diskFreeMb ?? 0) > 0 && (n.diskFreeMb ?? 0) <= (n.diskTotalMb ?? 0))
    t.true(n.dataDir.startsWith(s.c.node(n.node).dir), n.dataDir)
    t.is(n.load.length, 3)
    t.true(n.eventLoopDelayMs.p99 >= n.eventLoopDelayMs.p50 && n.eventLoopDelayMs.max >= n.eventLoopDelayMs.p99)
    t.true(n.meshConnections.in >= 1, `${n.node}: other nodes connect to it`)
    t.true((n.meshConnections.out ?? 0) >= 1, `${n.node}: it connects to other nodes`)
    t.true(n.gossipBytesPerSec.sent > 0 && n.gossipBytesPerSec.received > 0, `${n.node} gossips: ${JSON.stringify(n.gossipBytesPerSec)}`)
    const w = n.instances.find((i) => i.service === 'web')!
    t.true(w.port !== undefined && w.port > 0 && w.restarts === 0 && (w.uptimeMs ?? 0) > 0 && (w.memoryMb ?? 0) > 5, JSON.stringify(w))
  }
  t.is(ok(stats.nodes).find((n) => n.node === 'b')!.meshConnections.operators, 1, 'this REPL is the operator connected to b')
  // The hog burns about half a core: its rate shows it once two samples are apart.
  const busy = await waitFor(async () => {
    const r = await client.stats()
    const h = ok(r.nodes).flatMap((n) => n.instances).find((i) => i.service === 'hog')
    return h !== undefined && (h.cpuPercent ?? 0) > 10 ? h : undefined
  }, { what: 'the hog to show its CPU' })
  t.true((busy.memoryMb ?? 0) > 90 && (busy.processes ?? 0) >= 1, JSON.stringify(busy))

  // Round trip, for the record.
  const times: number[] = []
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now()
    await client.stats()
    times.push(performance.now() - t0)
  }
  times.sort((x, y) => x - y)
  t.log(`cluster.stats() round trip at 3 nodes: p50 ${times[Math.floor(times.length * 0.5)]!.toFixed(1)} ms, p99 ${times[times.length - 1]!.toFixed(1)} ms (${times.length} calls)`)
})

test.serial('stats: a dead node is listed as unreachable and the others still answer; -e prints JSON', async (t) => {
  const s = await specDirCluster(t)
  for (const name of ['a', 'b', 'c']) await s.c.start({ name, image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  s.c.node('c').proc.signal('SIGKILL')
  const client = await s.c.client('a')
  const stats = await waitFor(async () => {
    const r = await client.stats()
    return r.nodes.find((n) => n.node === 'c')?.status === 'unreachable' ? r : undefined
  }, { what: 'c to be listed unreachable' })
  const c = stats.nodes.find((n) => n.node === 'c')!
  t.is(c.status, 'unreachable')
  t.regex((c as { reason: string }).reason, /dead|no answer|connect|refused|closed/)
  t.deepEqual(ok(stats.nodes).map((n) => n.node), ['a', 'b'])
  const { stdout } = await run(process.execPath, [cliPath, 'repl', '--keys', s.c.keys, '--as', 'op', '--connect', s.c.node('b').address, '-e', 'await cluster.stats()'])
  const json = JSON.parse(stdout) as StatsView
  t.is(json.answeredBy, 'b')
  const b = json.nodes.find((n): n is NodeStats => n.node === 'b' && n.status === 'ok')!
  // The JSON fields are a contract.
  t.deepEqual(Object.keys(b).sort(), ['address', 'admissionRefusals', 'at', 'cpuPercent', 'cpus', 'dataDir', 'diskFreeMb', 'diskTotalMb', 'eventLoopDelayMs', 'gossipBytesPerSec', 'instances', 'load', 'memoryTotalMb', 'memoryUsedMb', 'meshConnections', 'node', 'nodeCpuPercent', 'nodeRssMb', 'status', 'windowMs'])
  t.deepEqual(Object.keys(json.nodes.find((n) => n.node === 'c')!).sort(), ['address', 'node', 'reason', 'status'])
})
