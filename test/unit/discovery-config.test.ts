import test from 'ava'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../../node/clock/virtual'
import { parseImageConfig, readImageConfig } from '../../node/config/image'
import { discovery, parsePeersFile, pluginDiscovery } from '../../node/discovery'
import { silentLogger } from '../../node/log'
import { refusal } from '../helpers/refusal'

const parse = (value: unknown): ReturnType<typeof parseImageConfig> => parseImageConfig(JSON.stringify(value))
const components = { log: silentLogger, dataDir: os.tmpdir(), nodeId: 'n1', listenPort: 7400 }

test('discovery config: every method is accepted as documented', (t) => {
  const discoveryField = {
    seeds: ['10.0.0.6:7400', '[fd00::6]:7400'],
    dns: { name: 'origin.prod.svc.cluster.local', port: 7400, intervalMs: 5000, server: '10.0.0.2:53' },
    git: { url: 'https://git.example.com/ops/peers.git', ref: 'main', path: 'clusters/prod', token: 't', intervalMs: 10000 },
    plugin: { module: '/opt/origin/consul.js', config: { service: 'origin' } }
  }
  const c = parse({ cluster: 'prod', seeds: ['10.0.0.4:7400'], discovery: discoveryField })
  t.deepEqual(c.discovery, discoveryField)
  t.deepEqual(c.seeds, ['10.0.0.4:7400'], 'top-level seeds keep working')
  t.is(parse({ cluster: 'prod' }).discovery, undefined)
  t.is(parse({ cluster: 'p', discovery: { dns: { name: '_mesh._tcp.origin.example.com.' } } }).discovery?.dns?.name, '_mesh._tcp.origin.example.com.')
})

test('discovery config: a bad method is refused naming the field', (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ dns: {} }, /\/discovery\/dns: missing required field "name"/],
    [{ dns: { name: 'bad name!' } }, /\/discovery\/dns\/name/],
    [{ dns: { name: 'a.b', port: 70000 } }, /\/discovery\/dns\/port/],
    [{ dns: { name: 'a.b', server: 'dns server' } }, /\/discovery\/dns\/server/],
    [{ dns: { name: 'a.b', intervalMs: 1 } }, /\/discovery\/dns\/intervalMs/],
    [{ git: { url: 'ftp://x/y.git', path: 'peers' } }, /\/discovery\/git\/url/],
    [{ git: { url: 'https://x/y.git' } }, /\/discovery\/git: missing required field "path"/],
    [{ plugin: {} }, /\/discovery\/plugin: missing required field "module"/],
    [{ seeds: ['nohost'] }, /\/discovery\/seeds\/0/],
    [{ consul: {} }, /\/discovery: unknown field "consul"/]
  ]
  for (const [field, message] of cases) {
    const err = refusal(() => parse({ cluster: 'prod', discovery: field }))
    t.is(err.code, 'E_CONFIG_INVALID')
    t.regex(err.message, message, JSON.stringify(field))
  }
})

test('discovery config: a plugin path in image.json is taken from the image dir', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-disc-'))
  try {
    await writeFile(join(dir, 'image.json'), JSON.stringify({ cluster: 'p', discovery: { plugin: { module: 'plugins/peers.js' } } }))
    t.is((await readImageConfig(join(dir, 'image.json'))).discovery?.plugin?.module, join(dir, 'plugins/peers.js'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('discovery: a peers file is one host:port a line, with comments; bad lines are reported by number', (t) => {
  const { peers, bad } = parsePeersFile('# prod peers\n10.0.0.4:7400\n\n10.0.0.5:7400   # rack b\n[fd00::7]:7400\n10.0.0.4:7400\nnot an address\n10.0.0.9:99999\r\n')
  t.deepEqual(peers, ['10.0.0.4:7400', '10.0.0.5:7400', '[fd00::7]:7400'])
  t.deepEqual(bad.map((b) => b.line), [7, 8])
})

test('discovery: methods run together and their peers are merged', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-disc-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const module = join(dir, 'peers.js')
  await writeFile(module, `
    const { EventEmitter } = require('node:events')
    exports.discovery = (config) => (components) => {
      const events = new EventEmitter()
      let peers = []
      return {
        name: 'test plugin for ' + components.nodeId,
        events,
        start: async () => { peers = config.peers },
        stop: async () => {},
        peers: () => peers
      }
    }`)
  const d = discovery({ seeds: ['10.0.0.1:7400', '10.0.0.2:7400'], plugin: { module, config: { peers: ['10.0.0.2:7400', '10.0.0.3:7400'] } } })(components)
  t.deepEqual(d.peers(), ['10.0.0.1:7400', '10.0.0.2:7400'], 'the plugin finds nothing before it starts')
  await d.start()
  t.deepEqual(d.peers(), ['10.0.0.1:7400', '10.0.0.2:7400', '10.0.0.3:7400'])
  t.regex(d.name, /seeds \+ test plugin for n1/)
  await d.stop()
})

test('discovery: a plugin module that cannot load, or exports no factory, is refused naming the module', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-disc-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const missing = refusal(() => pluginDiscovery({ module: join(dir, 'nope.js') })(components))
  t.is(missing.code, 'E_CONFIG_INVALID')
  t.regex(missing.message, /discovery\.plugin\.module .*nope\.js cannot be loaded/)
  await writeFile(join(dir, 'empty.js'), 'exports.other = 1\n')
  const empty = refusal(() => pluginDiscovery({ module: join(dir, 'empty.js') })(components))
  t.regex(empty.message, /empty\.js exports no discovery factory/)
  await writeFile(join(dir, 'half.js'), 'module.exports = () => () => ({ start: async () => {} })\n')
  const half = refusal(() => pluginDiscovery({ module: join(dir, 'half.js') })(components))
  t.regex(half.message, /half\.js made an object without stop\(\)/)
})

test('discovery: a plugin changing its peers is announced by the merged discovery', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-disc-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const module = join(dir, 'peers.js')
  await writeFile(module, `
    const { EventEmitter } = require('node:events')
    const events = new EventEmitter()
    let peers = []
    exports.set = (p) => { peers = p; events.emit('change', p) }
    exports.default = () => () => ({ events, start: async () => {}, stop: async () => {}, peers: () => peers })`)
  const d = discovery({ plugin: { module } })(components)
  await d.start()
  const changes: string[][] = []
  d.events.on('change', (p: string[]) => changes.push(p))
  ;(require(module) as { set: (p: string[]) => void }).set(['10.0.0.8:7400'])
  t.deepEqual(changes, [['10.0.0.8:7400']])
  t.deepEqual(d.peers(), ['10.0.0.8:7400'])
  t.true(d.methods[1].events instanceof EventEmitter)
  await d.stop()
})

test('discovery: a first lookup that hangs holds up the start until firstLookupMs has passed on the node\'s clock, then the node goes on with what it has', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-disc-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const module = join(dir, 'hangs.js')
  await writeFile(module, `
    const { EventEmitter } = require('node:events')
    exports.discovery = () => () => ({ events: new EventEmitter(), start: () => new Promise(() => {}), stop: async () => {}, peers: () => [] })`)
  const clock = new VirtualClock()
  const warned: string[] = []
  const log = { ...silentLogger, warn: (line: string) => { warned.push(line) } }
  const d = discovery({ seeds: ['10.0.0.1:7400'], plugin: { module }, firstLookupMs: 600_000 })({ ...components, log, clock })
  let started = false
  const start = d.start().then(() => { started = true })
  const t0 = clock.now()
  await clock.runUntil(t0 + 599_999)
  t.false(started, 'still waiting for the plugin before 10 min of virtual time')
  // On real timers this would wait ten minutes, past the test's timeout.
  await clock.runUntil(t0 + 600_000)
  await start
  t.deepEqual(d.peers(), ['10.0.0.1:7400'])
  t.deepEqual(warned, ['first lookups took over 600000 ms; going on with 1 peers found so far'])
  await d.stop()
})
