/**
 * Discovery end to end: real node processes find each other through a DNS server this
 * test runs on loopback (node:dgram, a few lines of DNS), through a peers file served by
 * the test git server, through a seed that answers late, and through a plugin module.
 */
import test from 'ava'
import dgram from 'node:dgram'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../node/clock/virtual'
import { dnsDiscovery } from '../node/discovery'
import { silentLogger } from '../node/log'
import { TestCluster, freeAddress } from './helpers/cluster'
import { startGitServer } from './helpers/git-server'
import { waitFor } from './helpers/wait'

// ---- a small authoritative DNS server: A, AAAA and SRV records, over UDP ----

interface Srv { priority: number, weight: number, port: number, target: string }
interface Records { A?: string[], AAAA?: string[], SRV?: Srv[] }

interface DnsServer { server: string, set (name: string, records: Records): void, remove (name: string): void, queries: number, stop (): Promise<void> }

const TYPE = { A: 1, AAAA: 28, SRV: 33 }

function encodeName (name: string): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l !== '')
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])])
}

function ipv6Bytes (a: string): Buffer {
  const [head, tail] = a.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  return Buffer.from(groups.flatMap((g) => { const n = parseInt(g, 16); return [n >> 8, n & 255] }))
}

function rdata (type: number, value: string | Srv): Buffer {
  if (type === TYPE.A) return Buffer.from((value as string).split('.').map(Number))
  if (type === TYPE.AAAA) return ipv6Bytes(value as string)
  const s = value as Srv
  const head = Buffer.alloc(6)
  head.writeUInt16BE(s.priority, 0); head.writeUInt16BE(s.weight, 2); head.writeUInt16BE(s.port, 4)
  return Buffer.concat([head, encodeName(s.target)])
}

async function startDnsServer (): Promise<DnsServer> {
  const zone = new Map<string, Records>()
  const socket = dgram.createSocket('udp4')
  const out: DnsServer = {
    server: '',
    queries: 0,
    set: (name, records) => { zone.set(name.toLowerCase(), records) },
    remove: (name) => { zone.delete(name.toLowerCase()) },
    stop: async () => await new Promise<void>((resolve) => socket.close(() => resolve()))
  }
  socket.on('message', (msg, from) => {
    out.queries++
    // Question: labels from byte 12, then type and class.
    let i = 12
    const labels: string[] = []
    while (msg[i] !== 0) { labels.push(msg.subarray(i + 1, i + 1 + msg[i]).toString()); i += msg[i] + 1 }
    const qtype = msg.readUInt16BE(i + 1)
    const question = msg.subarray(12, i + 5)
    const records = zone.get(labels.join('.').toLowerCase())
    const values: Array<string | Srv> = records === undefined ? [] : qtype === TYPE.A ? records.A ?? [] : qtype === TYPE.AAAA ? records.AAAA ?? [] : qtype === TYPE.SRV ? records.SRV ?? [] : []
    const header = Buffer.alloc(12)
    msg.copy(header, 0, 0, 2)
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x80 | (records === undefined ? 3 : 0), 2) // QR AA (RD) RA, NXDOMAIN when unknown
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(values.length, 6)
    const answers = values.map((v) => {
      const data = rdata(qtype, v)
      const rr = Buffer.alloc(12)
      rr.writeUInt16BE(0xc00c, 0); rr.writeUInt16BE(qtype, 2); rr.writeUInt16BE(1, 4); rr.writeUInt32BE(1, 6); rr.writeUInt16BE(data.length, 10)
      return Buffer.concat([rr, data])
    })
    socket.send(Buffer.concat([header, question, ...answers]), from.port, from.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  out.server = `127.0.0.1:${socket.address().port}`
  return out
}

const hostOf = (address: string): string => address.slice(0, address.lastIndexOf(':'))
const components = { log: silentLogger, dataDir: os.tmpdir(), nodeId: 'n1', listenPort: 7400 }

// ---- dns method on its own ----

test('discovery dns: A/AAAA records with the listen port, SRV records with theirs, nothing when the name is unknown', async (t) => {
  const dns = await startDnsServer()
  t.teardown(async () => await dns.stop())
  dns.set('origin.test', { A: ['127.0.0.5', '127.0.0.6'], AAAA: ['fd00::7'] })
  dns.set('_mesh._tcp.origin.test', { SRV: [{ priority: 10, weight: 1, port: 7500, target: 'n1.origin.test' }, { priority: 5, weight: 1, port: 7600, target: 'n2.origin.test' }] })
  dns.set('n1.origin.test', { A: ['127.0.0.8'] })
  dns.set('n2.origin.test', { A: ['127.0.0.9'] })
  const lookup = async (init: Parameters<typeof dnsDiscovery>[0]): Promise<string[]> => {
    const d = dnsDiscovery({ server: dns.server, ...init })(components)
    await d.start()
    await d.stop()
    return d.peers()
  }
  t.deepEqual(await lookup({ name: 'origin.test' }), ['127.0.0.5:7400', '127.0.0.6:7400', '[fd00::7]:7400'])
  t.deepEqual(await lookup({ name: 'origin.test', port: 7401 }), ['127.0.0.5:7401', '127.0.0.6:7401', '[fd00::7]:7401'])
  t.deepEqual(await lookup({ name: '_mesh._tcp.origin.test' }), ['127.0.0.9:7600', '127.0.0.8:7500'], 'SRV, by priority, targets resolved')
  t.deepEqual(await lookup({ name: 'nobody.test' }), [])
})

test('discovery dns: the name is re-resolved on its interval and a change is announced', async (t) => {
  const dns = await startDnsServer()
  t.teardown(async () => await dns.stop())
  dns.set('origin.test', { A: ['127.0.0.5'] })
  const d = dnsDiscovery({ name: 'origin.test', server: dns.server, intervalMs: 100 })(components)
  t.teardown(async () => await d.stop())
  const changes: string[][] = []
  d.events.on('change', (p: string[]) => changes.push(p))
  await d.start()
  t.deepEqual(d.peers(), ['127.0.0.5:7400'])
  dns.set('origin.test', { A: ['127.0.0.5', '127.0.0.6'] })
  await waitFor(() => d.peers().length === 2, { what: 'the new record to be found' })
  t.deepEqual(changes.at(-1), ['127.0.0.5:7400', '127.0.0.6:7400'])
})

test('discovery dns: on a virtual clock the name is re-resolved only when virtual time passes its interval', async (t) => {
  const dns = await startDnsServer()
  t.teardown(async () => await dns.stop())
  dns.set('origin.test', { A: ['127.0.0.5'] })
  const clock = new VirtualClock()
  // Ten minutes: on real timers the waitFor below (15 s) would time out.
  const intervalMs = 600_000
  const d = dnsDiscovery({ name: 'origin.test', port: 7400, server: dns.server, intervalMs })({ ...components, clock })
  t.teardown(async () => await d.stop())
  await d.start()
  const t0 = clock.now()
  const first = dns.queries
  t.deepEqual(d.peers(), ['127.0.0.5:7400'])
  dns.set('origin.test', { A: ['127.0.0.5', '127.0.0.6'] })
  await clock.runUntil(t0 + intervalMs - 1)
  t.is(dns.queries, first, 'no query before the interval has passed on the clock')
  t.deepEqual(d.peers(), ['127.0.0.5:7400'])
  await clock.runUntil(t0 + intervalMs)
  await waitFor(() => d.peers().length === 2, { what: 'the lookup started at the interval to find the new record' })
  const second = dns.queries
  t.true(second > first)
  await clock.runUntil(t0 + 2 * intervalMs - 1)
  t.is(dns.queries, second, 'and none again until the next interval')
})

test('discovery dns: a server that does not answer finds nobody, without holding up the start', async (t) => {
  const dns = await startDnsServer()
  const server = dns.server
  await dns.stop()
  const d = dnsDiscovery({ name: 'origin.test', server, timeoutMs: 200 })(components)
  await d.start()
  await d.stop()
  t.deepEqual(d.peers(), [])
})

// ---- whole nodes ----

test('discovery: three nodes find each other through DNS records', async (t) => {
  const dns = await startDnsServer()
  const c = await TestCluster.create()
  t.teardown(async () => { await c.cleanup(); await dns.stop() })
  const names = ['a', 'b', 'c']
  const addresses = await Promise.all(names.map(async () => await freeAddress()))
  dns.set('origin.test', { A: addresses.map(hostOf) })
  const image = { discovery: { dns: { name: 'origin.test', server: dns.server, intervalMs: 300 } } }
  await c.explainFailure(async () => {
    for (const [i, name] of names.entries()) await c.start({ name, address: addresses[i], seeds: [], image })
    await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' }, { timeoutMs: 30_000 })
  })
  t.regex(await c.node('a').log(), /discovery: dns origin\.test at 127\.0\.0\.1:\d+/)
})

test('discovery: three nodes find each other through a peers file in git', async (t) => {
  const gs = await startGitServer()
  const c = await TestCluster.create()
  t.teardown(async () => { await c.cleanup(); await gs.stop() })
  const [a, b, cc] = await Promise.all([freeAddress(), freeAddress(), freeAddress()])
  // Only a is listed at first; the file grows by a push, as an operator would add machines.
  await gs.seed({ 'clusters/test/peers': `# test cluster\n${a}\n` })
  const image = { discovery: { git: { url: gs.url, path: 'clusters/test/peers', intervalMs: 300 } } }
  await c.explainFailure(async () => {
    await c.start({ name: 'a', address: a, seeds: [], image })
    await c.start({ name: 'b', address: b, seeds: [], image })
    await c.waitForView({ a: 'alive', b: 'alive' }, { timeoutMs: 30_000 })
    const w = await gs.workdir()
    await w.write('clusters/test/peers', `# test cluster\n${a}\n${b}  # second machine\n${cc}\n`)
    await w.commit('add b and c')
    await w.push()
    await c.start({ name: 'c', address: cc, seeds: [], image })
    await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' }, { timeoutMs: 30_000 })
  })
  t.true(gs.requestsBy('origin-node/') > 0, 'nodes read the file over git, saying who they are')
})

test('discovery: a seed that does not answer at first, then does: the two clusters merge', async (t) => {
  const c = await TestCluster.create()
  t.teardown(async () => await c.cleanup())
  const [a, b] = await Promise.all([freeAddress(), freeAddress()])
  await c.explainFailure(async () => {
    // a knows b from discovery.seeds; b is not running, so a originates a cluster.
    await c.start({ name: 'a', address: a, seeds: [], image: { discovery: { seeds: [b] } } })
    await waitFor(async () => /no seed answered .*originating cluster/.test(await c.node('a').log()), { what: 'a to originate' })
    // b knows nobody and originates its own cluster, which b2 joins.
    await c.start({ name: 'b', address: b, seeds: [] })
    await c.start({ name: 'b2', seeds: ['b'] })
    await c.waitForView({ a: 'alive', b: 'alive', b2: 'alive' }, { timeoutMs: 30_000 })
  })
  t.pass()
})

test('discovery: a plugin module from a path gives the peers', async (t) => {
  const c = await TestCluster.create()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-plugin-'))
  t.teardown(async () => { await c.cleanup(); await rm(dir, { recursive: true, force: true }) })
  const module = join(dir, 'file-peers.js')
  // A plugin of the same interface: reads peers from a file named in its config.
  await writeFile(module, `
    const { EventEmitter } = require('node:events')
    const { readFileSync } = require('node:fs')
    exports.discovery = (config) => (components) => ({
      name: 'file ' + config.file,
      events: new EventEmitter(),
      start: async () => { components.log.info('file plugin started for ' + components.nodeId) },
      stop: async () => {},
      peers: () => readFileSync(config.file, 'utf8').split('\\n').filter(Boolean)
    })`)
  const peersFile = join(dir, 'peers')
  const a = await freeAddress()
  await writeFile(peersFile, `${a}\n`)
  const image = { discovery: { plugin: { module, config: { file: peersFile } } } }
  await c.explainFailure(async () => {
    await c.start({ name: 'a', address: a, seeds: [], image })
    await c.waitForView({ a: 'alive' })
    await c.start({ name: 'b', seeds: [], image })
    await c.waitForView({ a: 'alive', b: 'alive' }, { timeoutMs: 30_000 })
  })
  t.regex(await c.node('b').log(), /file plugin started for b/)
  t.regex(await c.node('b').log(), /joined through 127\.[0-9.]+:7400/, 'b joined a at start, through the address the plugin gave')
})

test('discovery: a node with a bad discovery config is refused, naming the field', async (t) => {
  const c = await TestCluster.create()
  t.teardown(async () => await c.cleanup())
  const n = await c.start({ name: 'a', seeds: [], image: { discovery: { dns: { name: 'origin.test', port: 99999 } } } })
  await waitFor(() => !n.proc.running, { what: 'the node to exit' })
  t.regex(await n.log(), /\/discovery\/dns\/port/)
})
