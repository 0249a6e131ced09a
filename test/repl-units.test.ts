import test from 'ava'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { StatsSampler, type NodeStats, type StatsComponents, type StatsView } from '../node/control/stats'
import { normalizeIp, parseEndpoint } from '../node/control/sockets'
import { locate } from '../node/cli/spec-lines'
import { OriginError } from '../node/errors'
import { clusterMethods, helpText, methodHelp } from '../repl/catalog'
import { Cluster } from '../repl/client'
import { completer, type Completer } from '../repl/complete'
import { errorLine, tsErrorLines } from '../repl/errors'
import { History, historyPath } from '../repl/history'
import { sinceToIso } from '../repl/since'
import { renderStats, watchStats, StatsReport } from '../repl/stats'

test('since: durations, dates and ISO strings become ISO times', (t) => {
  const now = Date.parse('2024-05-01T12:00:00Z')
  t.is(sinceToIso('10m', now), '2024-05-01T11:50:00.000Z')
  t.is(sinceToIso('2h', now), '2024-05-01T10:00:00.000Z')
  t.is(sinceToIso('1d', now), '2024-04-30T12:00:00.000Z')
  t.is(sinceToIso('30s', now), '2024-05-01T11:59:30.000Z')
  t.is(sinceToIso(new Date('2024-05-01T08:00:00Z'), now), '2024-05-01T08:00:00.000Z')
  t.is(sinceToIso('2024-05-01T08:00:00+02:00', now), '2024-05-01T06:00:00.000Z')
  t.is(sinceToIso('2024-05-01', now), '2024-05-01T00:00:00.000Z')
  t.is(sinceToIso('2024-05-01 14:00', now), new Date(2024, 4, 1, 14, 0).toISOString(), 'a date without a zone is local time')
  const e = t.throws(() => sinceToIso('yesterday', now))
  t.is((e as OriginError).code, 'E_ARGS')
  t.regex(e.message, /'10m', '2h'/)
})

test('stats: /proc/net/tcp endpoints read as the addresses members have', (t) => {
  t.is(parseEndpoint('0100007F:1CE8'), '127.0.0.1:7400')
  t.is(parseEndpoint('0B0A0A7F:1CE8'), '127.10.10.11:7400')
  t.is(parseEndpoint('0000000000000000FFFF00000100007F:1CE8'), '127.0.0.1:7400', 'IPv4-mapped IPv6 is the IPv4 address')
  t.is(parseEndpoint('00000000000000000000000001000000:0050'), '0:0:0:0:0:0:0:1:80')
  t.is(normalizeIp('::1'), '0:0:0:0:0:0:0:1')
  t.is(normalizeIp('fe80::0a:1'), 'fe80:0:0:0:0:0:a:1')
  t.is(normalizeIp('::ffff:10.0.0.4'), '10.0.0.4')
  t.is(normalizeIp('10.0.0.4'), '10.0.0.4')
})

test('stats: instance CPU is the rate of its CPU ticks over the window; memory is its RSS', async (t) => {
  const t0 = Date.now()
  let restarted = false
  const sampler = new StatsSampler({
    dataDir: os.tmpdir(),
    membership: { id: 'a', address: '127.0.0.1:7400', table: () => ({}) },
    // 100 ticks a second: one core busy.
    supervisor: {
      report: () => [{ instance: 'web-1', service: 'web', node: 'a', version: 'v', status: { state: 'ready', restarts: restarted ? 1 : 0, startedAt: restarted ? t0 + 1 : t0 }, port: 8080, ports: { http: 8080 }, address: '127.0.0.1:8080', logPath: '' }],
      usage: async () => ({ 'web-1': { pids: [10, 11], rssKb: 51200, cpuTicks: Math.round((Date.now() - t0) / 10) } })
    },
    mesh: { count: async () => ({ in: 2, out: 2, operators: 1 }) },
    transport: { traffic: () => undefined },
    health: { loopDelay: () => ({ p50: 0.1, p99: 2, max: 5 }) }
  }, { minWindowMs: 100, windowMs: 300 })
  const first = await sampler.collect()
  t.deepEqual(first.eventLoopDelayMs, { p50: 0.1, p99: 2, max: 5 }, 'the delay the health layer measures')
  t.true(first.windowMs >= 300, `a first answer measures a window, got ${first.windowMs} ms`)
  const web = first.instances[0]!
  t.is(web.memoryMb, 50)
  t.is(web.processes, 2)
  t.is(web.port, 8080)
  t.true(web.cpuPercent !== undefined && web.cpuPercent > 60 && web.cpuPercent < 140, `one busy core is about 100%, got ${String(web.cpuPercent)}`)
  t.true(first.cpuPercent >= 0 && first.cpuPercent <= 100)
  t.true(first.memoryTotalMb > 0 && first.memoryUsedMb > 0 && first.memoryUsedMb <= first.memoryTotalMb)
  t.true((first.diskFreeMb ?? 0) > 0)
  t.is(first.load.length, 3)
  t.deepEqual(first.meshConnections, { in: 2, out: 2, operators: 1 })
  await new Promise((resolve) => setTimeout(resolve, 150))
  const second = await sampler.collect()
  t.true(second.windowMs >= 100 && second.windowMs < 1000, `the next answer measures since the last, got ${second.windowMs} ms`)
  restarted = true
  await new Promise((resolve) => setTimeout(resolve, 150))
  const third = await sampler.collect()
  t.is(third.instances[0]!.cpuPercent, undefined, 'a restarted instance has no rate until a second sample of its new process')
  t.is(third.instances[0]!.restarts, 1)
})

test('stats: asked every 30 ms, rates measure recent windows, and an instance started meanwhile gets its rate', async (t) => {
  const t0 = Date.now()
  let late = false
  const row = (instance: string, startedAt: number): ReturnType<StatsComponents['supervisor']['report']>[number] =>
    ({ instance, service: 'web', node: 'a', version: 'v', status: { state: 'ready', restarts: 0, startedAt }, port: 8080, ports: { http: 8080 }, address: '127.0.0.1:8080', logPath: '' })
  const lateAt = t0 + 300
  const sampler = new StatsSampler({
    dataDir: os.tmpdir(),
    membership: { id: 'a', address: '127.0.0.1:7400', table: () => ({}) },
    supervisor: {
      report: () => late ? [row('web-1', t0), row('web-2', lateAt)] : [row('web-1', t0)],
      usage: async () => ({
        'web-1': { pids: [10], rssKb: 1024, cpuTicks: Math.round((Date.now() - t0) / 10) },
        ...(late ? { 'web-2': { pids: [11], rssKb: 1024, cpuTicks: Math.round((Date.now() - lateAt) / 20) } } : {})
      })
    },
    mesh: { count: async () => ({ in: 0, out: 0, operators: 0 }) },
    transport: { traffic: () => undefined }
  }, { minWindowMs: 100, windowMs: 150, maxWindowMs: 60_000 })
  const windows: number[] = []
  let lateRate: number | undefined
  while (Date.now() - t0 < 1500) {
    if (!late && Date.now() >= lateAt) late = true
    const s = await sampler.collect()
    windows.push(s.windowMs)
    lateRate = s.instances.find((i) => i.instance === 'web-2')?.cpuPercent
    await new Promise((resolve) => setTimeout(resolve, 30))
  }
  const last = windows.slice(-10)
  t.true(last.every((w) => w >= 100 && w < 400), `windows stay recent: ${last.join(' ')} ms`)
  t.true(lateRate !== undefined && lateRate > 25 && lateRate < 75, `half a core for the late instance, got ${String(lateRate)}`)
})

test('stats: the tables list unreachable nodes with the reason, and instances by name', (t) => {
  const ok: NodeStats = {
    node: 'a', address: '127.0.0.1:7400', status: 'ok', at: 0, windowMs: 500, cpuPercent: 12.5, cpus: 2, nodeCpuPercent: 3, memoryUsedMb: 3000, memoryTotalMb: 8000, nodeRssMb: 90, load: [0.5, 0.4, 0.3], diskFreeMb: 20_000, diskTotalMb: 50_000, dataDir: '/d', eventLoopDelayMs: { p50: 0.1, p99: 1.2, max: 4 }, meshConnections: { in: 1, out: 1, operators: 1 }, gossipBytesPerSec: { sent: 12_400, received: 830 },
    instances: [{ instance: 'web-2', service: 'web', state: 'ready', cpuPercent: 1.5, memoryMb: 120, processes: 2, restarts: 1, uptimeMs: 65_000, port: 8080 }, { instance: 'db-1', service: 'db', state: 'backoff', restarts: 3 }]
  }
  const view: StatsView = { answeredBy: 'a', at: 0, nodes: [ok, { node: 'b', address: '127.0.0.2:7400', status: 'unreachable', reason: 'dead (no heartbeat)' }] }
  const text = renderStats(view)
  t.regex(text, /^a\s+13% of 2\s+0\.50 0\.40 0\.30\s+2\.9 GiB \/ 7\.8 GiB\s+19\.5 GiB\s+0\.1\/1\.2 ms\s+1\/1 \+1 op\s+12\.4 kB\/s \/ 830 B\/s/m)
  t.regex(text, /^b: unreachable \(127\.0\.0\.2:7400\): dead \(no heartbeat\)$/m)
  t.regex(text, /^db-1\s+a\s+backoff\s+3$/m)
  t.regex(text, /^web-2\s+a\s+ready\s+1\.5%\s+120 MiB\s+2\s+1\s+1m05s\s+8080$/m)
  t.true(text.indexOf('db-1') < text.indexOf('web-2'))
  t.deepEqual(JSON.parse(JSON.stringify(new StatsReport(view))), view, 'the JSON is the view as the node sent it')
})

test('stats: watch without a terminal writes one JSON line per refresh and ends at the interrupt', async (t) => {
  let interrupt!: () => void
  const stopped = new Promise<void>((resolve) => { interrupt = resolve })
  const written: string[] = []
  let calls = 0
  const result = await watchStats(async () => {
    calls++
    if (calls === 3) interrupt()
    if (calls === 2) throw new OriginError('E_TIMEOUT', 'no answer')
    return new StatsReport({ answeredBy: 'a', at: calls, nodes: [] })
  }, 10, { interactive: false, write: (s) => written.push(s), note: () => {}, interrupted: async () => await stopped })
  t.is(result, undefined)
  t.is(written.length, 2, JSON.stringify(written))
  t.deepEqual(JSON.parse(written[0]!), { answeredBy: 'a', at: 1, nodes: [] })
  t.deepEqual(JSON.parse(written[1]!), { error: 'no answer' }, 'a failed refresh says so and the watch goes on')
})

test('repl: every public method of cluster is in the help, and nothing else', (t) => {
  const proto = Object.getOwnPropertyNames(Cluster.prototype).filter((n) => n !== 'constructor' && typeof Object.getOwnPropertyDescriptor(Cluster.prototype, n)?.value === 'function')
  // attach and close belong to the session, not to the operator.
  t.deepEqual(proto.filter((n) => n !== 'attach' && n !== 'close').sort(), clusterMethods.map((m) => m.name).sort())
  for (const m of clusterMethods) t.truthy(methodHelp(m.name)?.includes(m.example.split('\n')[0]!), m.name)
  t.regex(methodHelp('logs') ?? '', /^cluster\.logs\(node: string, service: string/)
  t.is(methodHelp('nosuch'), undefined)
  const help = helpText({ connected: 'connected to a', ops: { aliveCount: async (cluster: unknown) => cluster }, opsDocs: { aliveCount: 'How many nodes are alive.' } })
  for (const m of clusterMethods) t.regex(help, new RegExp(`^  cluster\\.${m.name}\\(`, 'm'))
  t.regex(help, /^ {2}ops\.aliveCount\(cluster\)\s+How many nodes are alive\.$/m)
  t.regex(help, /^ {2}open\(path\)\s+open a file/m)
  t.regex(help, /^ {2}\.debug\s+/m)
})

function fakeCluster (): Cluster {
  const link = {
    members: () => [{ id: 'node-1', address: 'x:1', status: 'alive' }, { id: 'node-2', address: 'x:2', status: 'dead' }, { id: 'gone', address: 'x:3', status: 'left' }],
    call: async () => ({ services: [{ name: 'web' }, { name: 'worker' }] })
  }
  return { link } as unknown as Cluster
}

async function complete (c: Completer, line: string): Promise<[string[], string]> {
  return await new Promise((resolve, reject) => c(line, (err, r) => { if (err !== null) reject(err); else resolve(r!) }))
}

test('repl: Tab offers public methods, node ids and service names', async (t) => {
  const fallback: Completer = (line, cb) => cb(null, [['__proto__', 'constructor', 'toString', 'x.__defineGetter__'], line])
  const c = completer({ cluster: fakeCluster(), ops: { aliveCount: () => 1 }, fallback })
  t.deepEqual(await complete(c, 'cluster.'), [clusterMethods.map((m) => m.name), ''])
  t.deepEqual(await complete(c, 'await cluster.s'), [['spec', 'sync', 'services', 'stats', 'state', 'save'], 's'])
  t.deepEqual(await complete(c, 'await cluster.where(\'w'), [['web', 'worker'], 'w'])
  t.deepEqual(await complete(c, 'await cluster.forget("'), [['node-1', 'node-2'], ''], 'a left node is not offered')
  t.deepEqual(await complete(c, "await cluster.logs('node-1', '"), [['node', 'web', 'worker', 'build-web', 'build-worker'], ''])
  t.deepEqual(await complete(c, "await cluster.logs('"), [['node-1', 'node-2', 'web', 'worker'], ''])
  t.deepEqual(await complete(c, 'cluster.help(\'l'), [['logs'], 'l'])
  t.deepEqual(await complete(c, 'ops.al'), [['aliveCount'], 'al'])
  t.deepEqual(await complete(c, 'x.'), [['toString'], 'x.'], 'Node\'s own completion, without __proto__ and the like')
})

test('repl: errors are one line with the code and what to do', (t) => {
  t.is(errorLine(new OriginError('E_NOT_FOUND', 'no node "zz" in the member table')), 'E_NOT_FOUND: no node "zz" in the member table — check the name: cluster.nodes() lists the nodes, cluster.services() the services')
  t.is(errorLine(new OriginError('E_SPEC_INVALID', 'rejected:\n  a.json: bad\n  b.json: worse')), 'E_SPEC_INVALID: rejected:; a.json: bad; b.json: worse — fix the files named; origin spec check DIR checks a spec before pushing it')
  t.is(errorLine(new ReferenceError('q is not defined')), 'ReferenceError: q is not defined — cluster, ops and open are in scope; .help lists what they offer')
  t.regex(errorLine(new OriginError('E_PAYLOAD_INVALID', 'payload of cluster.logs is invalid: /since: must match pattern "^\\d{4}"')), / — since takes '10m', '2h'/)
  t.is(errorLine('plain'), 'Error: plain')
  const ts = 'TSError: ⨯ Unable to compile TypeScript:\n<repl>.ts:1:5 - error TS1109: Expression expected.\n\n    at createTSError (/x/index.ts:1:1)\n'
  t.is(tsErrorLines(ts), 'TS1109: Expression expected. (line 1, column 5) — check the syntax; .editor takes several lines')
  t.is(tsErrorLines('something else'), undefined)
})

test('repl: history is kept in the config dir, 0600, without blanks or repeats', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-history-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  t.is(historyPath({ XDG_CONFIG_HOME: dir }), join(dir, 'origin', 'repl_history'))
  t.is(historyPath({ HOME: '/home/x', XDG_CONFIG_HOME: '' }).endsWith(join('.config', 'origin', 'repl_history')), true)
  const path = historyPath({ XDG_CONFIG_HOME: dir })
  const h = await History.open(path, 3)
  for (const l of ['1 + 1', '1 + 1', '  ', 'await cluster.nodes()', 'a', 'b']) h.add(l)
  await h.flush()
  t.is(await readFile(path, 'utf8'), '1 + 1\nawait cluster.nodes()\na\nb\n')
  t.is((await stat(path)).mode & 0o777, 0o600)
  t.deepEqual((await History.open(path, 3)).lines, ['await cluster.nodes()', 'a', 'b'], 'the newest lines, oldest first')
})

test('spec check: a schema error is located at its line in JSON and TS files', (t) => {
  const json = '{\n  "run": { "command": "node" },\n  "placement": {\n    "kind": "everywhere"\n  }\n}\n'
  t.deepEqual(locate('services/web.json', json, '/placement/kind'), { line: 4, column: 13 })
  t.deepEqual(locate('services/web.json', json, '/placement/count'), { line: 3, column: 16 }, 'a missing field: the object that lacks it')
  const tsText = "import { defineService } from 'origin/spec'\nexport default defineService({\n  run: { command: 'node', args: ['a', 2] },\n  placement: { kind: 'every' }\n})\n"
  t.deepEqual(locate('services/a.ts', tsText, '/run/args/1'), { line: 3, column: 39 })
  t.deepEqual(locate('cluster.ts', 'export default {\n  name: "x",\n  minNodes: "two"\n} as const\n', '/minNodes'), { line: 3, column: 13 })
})
