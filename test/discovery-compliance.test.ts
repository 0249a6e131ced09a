/**
 * The Discovery contract (node/discovery/types.ts), one suite run against every method: the
 * fixed seeds, dns (against a DNS server this test runs on loopback), git (a peers file in
 * the test git server), the discovery-file plugin (as image.json's `layers.discovery` loads
 * it), a discovery plugin module by path (the `plugin` method), and `discovery()`, the
 * methods merged as the node runs them. What each promises: the first lookup is done when
 * start() resolves; peers() lists each address once and never blocks; a change at the
 * source is announced once as 'change' with the new list; a source with nothing, or one
 * that cannot be reached, finds nobody without failing the start; stop() is idempotent.
 */
import test, { type ExecutionContext } from 'ava'
import dgram from 'node:dgram'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { discovery, dnsDiscovery, gitDiscovery, pluginDiscovery, seedsDiscovery, type Discovery, type DiscoveryComponents } from '../node/discovery'
import { silentLogger } from '../node/log'
import { loadLayerPlugin } from '../node/plugins'
import { startGitServer, type GitServer } from './helpers/git-server'
import { freeAddress } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const PORT = 7400
const INTERVAL = 150

// A DNS server answering A queries from a table, over UDP on loopback: enough for the dns
// method paired with a port. (test/discovery.test.ts has the fuller one, with AAAA and SRV.)
interface DnsServer { server: string, set (name: string, hosts: string[] | undefined): void, stop (): Promise<void> }

async function startDnsServer (): Promise<DnsServer> {
  const zone = new Map<string, string[]>()
  const socket = dgram.createSocket('udp4')
  socket.on('message', (msg, from) => {
    let i = 12
    const labels: string[] = []
    while (msg[i] !== 0) { labels.push(msg.subarray(i + 1, i + 1 + msg[i]).toString()); i += msg[i] + 1 }
    const qtype = msg.readUInt16BE(i + 1)
    const hosts = zone.get(labels.join('.').toLowerCase())
    const answers = hosts === undefined || qtype !== 1 ? [] : hosts
    const header = Buffer.alloc(12)
    msg.copy(header, 0, 0, 2)
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x80 | (hosts === undefined ? 3 : 0), 2)
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(answers.length, 6)
    const rrs = answers.map((a) => {
      const rr = Buffer.alloc(16)
      rr.writeUInt16BE(0xc00c, 0); rr.writeUInt16BE(1, 2); rr.writeUInt16BE(1, 4); rr.writeUInt32BE(1, 6); rr.writeUInt16BE(4, 10)
      Buffer.from(a.split('.').map(Number)).copy(rr, 12)
      return rr
    })
    socket.send(Buffer.concat([header, msg.subarray(12, i + 5), ...rrs]), from.port, from.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  return {
    server: `127.0.0.1:${socket.address().port}`,
    set: (name, hosts) => { if (hosts === undefined) zone.delete(name); else zone.set(name, hosts) },
    stop: async () => await new Promise<void>((resolve) => socket.close(() => resolve()))
  }
}

/** A method with its source: what it is given at first, and how its source changes. */
interface Source {
  discovery: Discovery
  /** Puts these addresses (host:7400, duplicates as given) at the source; undefined: its source never changes. */
  set?: (peers: string[]) => Promise<void>
}

interface Method {
  name: string
  /** A method whose source lists `peers` at first. */
  make: (t: ExecutionContext, c: DiscoveryComponents, peers: string[]) => Promise<Source>
  /** A method whose source cannot be reached (or is not there). */
  unreachable: (t: ExecutionContext, c: DiscoveryComponents) => Promise<Discovery>
}

const peersFile = (peers: string[]): string => `# compliance\n${peers.join('\n')}\n`
const hostOf = (a: string): string => a.slice(0, a.lastIndexOf(':'))
const fileModule = resolve(__dirname, '..', 'plugins', 'discovery-file', 'index.js')

let files = 0
// One server per test: pushes to one repository from tests running side by side would race.
const gitServer = async (t: ExecutionContext): Promise<GitServer> => {
  const gs = await startGitServer()
  t.teardown(async () => await gs.stop())
  return gs
}

const fileSource = async (c: DiscoveryComponents, peers: string[]): Promise<{ path: string, set: (p: string[]) => Promise<void> }> => {
  const path = join(c.dataDir, `peers-${++files}`)
  await writeFile(path, peersFile(peers))
  return { path, set: async (p) => await writeFile(path, peersFile(p)) }
}

const methods: Method[] = [
  {
    name: 'seeds',
    make: async (_t, c, peers) => ({ discovery: seedsDiscovery({ seeds: peers })(c) }),
    unreachable: async (_t, c) => seedsDiscovery({})(c)
  },
  {
    name: 'dns',
    make: async (t, c, peers) => {
      const dns = await startDnsServer()
      t.teardown(async () => await dns.stop())
      dns.set('origin.test', peers.map(hostOf))
      return { discovery: dnsDiscovery({ name: 'origin.test', port: PORT, server: dns.server, intervalMs: INTERVAL, timeoutMs: 300 })(c), set: async (p) => dns.set('origin.test', p.map(hostOf)) }
    },
    unreachable: async (_t, c) => {
      const dns = await startDnsServer()
      await dns.stop()
      return dnsDiscovery({ name: 'origin.test', port: PORT, server: dns.server, intervalMs: INTERVAL, timeoutMs: 200 })(c)
    }
  },
  {
    name: 'git',
    make: async (t, c, peers) => {
      const gs = await gitServer(t)
      const path = 'clusters/test/peers'
      await gs.seed({ [path]: peersFile(peers) })
      return { discovery: gitDiscovery({ url: gs.url, path, intervalMs: INTERVAL })(c), set: async (p) => { await gs.seed({ [path]: peersFile(p) }) } }
    },
    unreachable: async (_t, c) => gitDiscovery({ url: `http://${await freeAddress()}/nobody.git`, path: 'peers', intervalMs: INTERVAL })(c)
  },
  {
    name: 'discovery-file plugin',
    make: async (_t, c, peers) => {
      const f = await fileSource(c, peers)
      return { discovery: loadLayerPlugin('discovery', { use: 'discovery-file', config: { path: f.path, intervalMs: INTERVAL } }).factory({})(c), set: f.set }
    },
    unreachable: async (_t, c) => loadLayerPlugin('discovery', { use: 'discovery-file', config: { path: join(c.dataDir, 'no-such-file'), intervalMs: INTERVAL } }).factory({})(c)
  },
  {
    name: 'plugin module',
    make: async (_t, c, peers) => {
      const f = await fileSource(c, peers)
      return { discovery: pluginDiscovery({ module: fileModule, config: { path: f.path, intervalMs: INTERVAL } })(c), set: f.set }
    },
    unreachable: async (_t, c) => pluginDiscovery({ module: fileModule, config: { path: join(c.dataDir, 'no-such-file'), intervalMs: INTERVAL } })(c)
  },
  {
    name: 'discovery() merging methods',
    make: async (_t, c, peers) => {
      // Half of the peers in a fixed list, all of them in a file: each address once in the merge.
      const f = await fileSource(c, peers)
      return { discovery: discovery({ seeds: peers.slice(0, 1), plugin: { module: fileModule, config: { path: f.path, intervalMs: INTERVAL } } })(c), set: async (p) => await f.set(p) }
    },
    unreachable: async (_t, c) => discovery({ plugin: { module: fileModule, config: { path: join(c.dataDir, 'no-such-file') } }, firstLookupMs: 1000 })(c)
  }
]

async function components (t: ExecutionContext): Promise<DiscoveryComponents> {
  const dataDir = await mkdtemp(join(os.tmpdir(), 'origin-discovery-compliance-'))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
  return { log: silentLogger, dataDir, nodeId: 'n1', listenPort: PORT }
}

async function started (t: ExecutionContext, d: Discovery): Promise<Discovery> {
  t.teardown(async () => await d.stop())
  await d.start()
  return d
}

const sorted = (a: string[]): string[] => [...a].sort()

for (const m of methods) {
  test(`${m.name}: the first lookup is done when start() resolves, and peers() lists each address once`, async (t) => {
    const c = await components(t)
    const { discovery: d } = await m.make(t, c, ['127.0.0.5:7400', '127.0.0.6:7400', '127.0.0.5:7400'])
    await started(t, d)
    t.deepEqual(sorted(d.peers()), ['127.0.0.5:7400', '127.0.0.6:7400'])
    t.is(typeof d.name, 'string')
    t.not(d.name, '')
  })

  test(`${m.name}: a change at its source is announced as 'change' with the new list`, async (t) => {
    const c = await components(t)
    const source = await m.make(t, c, ['127.0.0.5:7400'])
    if (source.set === undefined) {
      t.log(`${m.name}: its source is fixed; nothing to change`)
      await started(t, source.discovery)
      t.deepEqual(source.discovery.peers(), ['127.0.0.5:7400'])
      return
    }
    const d = await started(t, source.discovery)
    const changes: string[][] = []
    d.events.on('change', (p: string[]) => changes.push(sorted(p)))
    await source.set(['127.0.0.5:7400', '127.0.0.7:7400'])
    await waitFor(() => changes.length > 0, { what: `${m.name} to announce the new peer` })
    t.deepEqual(changes[0], ['127.0.0.5:7400', '127.0.0.7:7400'])
    t.deepEqual(sorted(d.peers()), ['127.0.0.5:7400', '127.0.0.7:7400'])
    await source.set(['127.0.0.8:7400'])
    await waitFor(() => changes.length > 1, { what: `${m.name} to announce one peer gone and another come` })
    // The merged method also has its fixed seed, which no source change removes.
    const expected = m.name.startsWith('discovery()') ? ['127.0.0.5:7400', '127.0.0.8:7400'] : ['127.0.0.8:7400']
    t.deepEqual(changes.at(-1), expected)
    t.deepEqual(sorted(d.peers()), expected)
  })

  test(`${m.name}: a source that is empty or cannot be reached finds nobody and does not fail the start; stop() twice is fine`, async (t) => {
    const c = await components(t)
    const d = await m.unreachable(t, c)
    const at = Date.now()
    await d.start()
    t.deepEqual(d.peers(), [])
    t.true(Date.now() - at < 6000, `the start was not held up: ${Date.now() - at} ms`)
    await d.stop()
    await d.stop()
    t.deepEqual(d.peers(), [], 'peers() answers after stop too')
  })
}
