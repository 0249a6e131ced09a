/**
 * Plugins named in image.json's `layers` replace their layer when the node is assembled:
 * nodes in one process whose image.json says `transport-memory` and `discovery-file` form a
 * cluster with no socket and no seed, a hubs plugin from a path is the node's hubs layer,
 * a plugin in a signed commit of the spec repo replaces its layer (an unsigned one is refused),
 * every layer named in image.json (the spec layer by its old name) is made by its plugin and
 * runs a spec, a plugin with a bad config or a dependency the node lacks is refused by the
 * layer's name before anything starts, and node
 * processes (the CLI reading image.json) merge once their discovery-file lists one of them.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { parseImageConfig, readImageConfig } from '../node/config/image'
import { OriginError } from '../node/errors'
import { startNode, type RunningNode } from '../node/assembly'
import { namedNetwork } from '../plugins/transport-memory'
import { builtInDependencies, builtInLayers } from '../node/layers'
import { assemble } from '../node/plugins'
import { TestCluster, fastMembership, makeKeys } from './helpers/cluster'
import { startGitServer } from './helpers/git-server'
import { waitFor } from './helpers/wait'

let dir = ''
let keys = ''
test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-plugins-'))
  keys = await makeKeys(join(dir, 'keys'), 'test')
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

/** An image.json as a node would read it (checked by the same schema). */
const image = (name: string, listen: string, more: Record<string, unknown>) => parseImageConfig(JSON.stringify({
  cluster: 'test', listen, name, data: join(dir, name), membership: fastMembership, log: { level: 'error' }, ...more
}))

// A hub policy a user might want: the hubs are the nodes named in the config, whatever they rank.
const fixedHubs = `
    const { EventEmitter } = require('node:events')
    exports.configSchema = { type: 'object', required: ['names'], additionalProperties: false, properties: { names: { type: 'array', items: { type: 'string' } } } }
    exports.hubs = (init) => ({ membership }) => {
      const events = new EventEmitter()
      return {
        events, fixed: true,
        current: () => init.names.filter((n) => membership.table()[n]?.status === 'alive'),
        isHub: () => init.names.includes(membership.id),
        policy: () => ({}),
        setPolicy: () => {},
        start: async () => {}, stop: async () => {}
      }
    }
`

test.serial('plugins: transport-memory and discovery-file named in image.json replace their layers; the nodes find each other through the file', async (t) => {
  const peers = join(dir, 'peers')
  await writeFile(peers, '127.78.0.1:7400\n')
  const layers = {
    transport: { use: 'transport-memory', config: { network: 'plugins-test' } },
    discovery: { use: 'discovery-file', config: { path: peers, intervalMs: 200 } }
  }
  const nodes: RunningNode[] = []
  t.teardown(async () => { await Promise.all(nodes.map(async (n) => await n.stop().catch(() => {}))) })
  for (const i of [1, 2, 3]) nodes.push(await startNode({ config: image(`p${i}`, `127.78.0.${i}:7400`, { layers }), keys }))
  // The memory network named in the config carries them: no sockets were opened for the mesh.
  t.deepEqual(namedNetwork('plugins-test').addresses.sort(), ['127.78.0.1:7400', '127.78.0.2:7400', '127.78.0.3:7400'])
  t.is(nodes[0].transport.constructor.name, 'MemoryTransport')
  await waitFor(() => nodes.every((n) => Object.values(n.membership.table()).filter((m) => m.status === 'alive').length === 3), { what: 'three nodes to see three alive' })
  t.pass()
})

test.serial('plugins: a hubs plugin from a path (relative to the image) is the node\'s hubs layer, given its config', async (t) => {
  const plugin = join(dir, 'fixed-hubs.js')
  await writeFile(plugin, fixedHubs)
  // As `origin node --image DIR` reads it: the plugin's path is the image dir's.
  await writeFile(join(dir, 'image.json'), JSON.stringify({
    cluster: 'test', listen: '127.78.1.1:7400', name: 'h1', data: join(dir, 'h1'), membership: fastMembership, log: { level: 'error' },
    layers: { transport: { use: 'transport-memory', config: { network: 'plugins-hubs' } }, hubs: { use: 'fixed-hubs.js', config: { names: ['h1', 'h9'] } } }
  }))
  const config = await readImageConfig(join(dir, 'image.json'))
  t.is(config.layers?.hubs?.use, plugin)
  const node = await startNode({ config, keys })
  t.teardown(async () => await node.stop())
  t.true((node.hubs as unknown as { fixed: boolean }).fixed)
  await waitFor(() => node.hubs.current().length === 1)
  t.deepEqual(node.hubs.current(), ['h1'])
  t.true(node.hubs.isHub())
})

test.serial('plugins: a plugin with a bad config is refused by the layer\'s name, and nothing starts', async (t) => {
  const config = image('b1', '127.78.2.1:7400', {
    layers: { transport: { use: 'transport-memory', config: { network: 'plugins-bad' } }, discovery: { use: 'discovery-file', config: { path: 'x', intervalMs: 'soon' } } }
  })
  const err = await t.throwsAsync(startNode({ config, keys }))
  t.true(err instanceof OriginError)
  t.is((err as OriginError).code, 'E_CONFIG_INVALID')
  t.regex(err?.message ?? '', /^layer discovery \("discovery-file"\): layers\.discovery\.config is invalid: \/intervalMs: must be integer/)
  t.deepEqual(namedNetwork('plugins-bad').addresses, [])
})

test.serial('plugins: a plugin from the spec repo replaces its layer only from a signed commit, with allowedSigners set', async (t) => {
  const git = await startGitServer()
  t.teardown(async () => await git.stop())
  const keyDir = await mkdtemp(join(os.tmpdir(), 'origin-plugins-ssh-'))
  t.teardown(async () => await rm(keyDir, { recursive: true, force: true }))
  const keyFile = join(keyDir, 'id_ed25519')
  await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice', '-f', keyFile])
  const publicKey = (await readFile(keyFile + '.pub', 'utf8')).trim()
  const work = await git.workdir()
  await work.write('cluster.json', JSON.stringify({ name: 'test', minNodes: 1 }))
  await work.write('plugins/fixed-hubs/index.js', fixedHubs)
  const signed = await work.commit('fixed hubs', { sign: { keyFile } })
  await work.push()
  const layers = { transport: { use: 'transport-memory', config: { network: 'plugins-spec' } }, hubs: { use: 'spec:fixed-hubs', config: { names: ['s1'] } } }
  const spec = { url: git.url, pollIntervalMs: 60_000, allowedSigners: [publicKey] }

  const node = await startNode({ config: image('s1', '127.78.3.1:7400', { layers, spec }), keys })
  t.teardown(async () => await node.stop())
  t.true((node.hubs as unknown as { fixed: boolean }).fixed)
  t.true(node.hubs.isHub())
  // It ran from the signed commit's files.
  t.is(await readFile(join(dir, 's1', 'spec-plugins', signed, 'plugins', 'fixed-hubs', 'index.js'), 'utf8'), fixedHubs)

  // Without allowed signers the spec repo's plugins are not run at all.
  const unsignedOk = { url: git.url, pollIntervalMs: 60_000 }
  const noSigners = await t.throwsAsync(startNode({ config: image('s2', '127.78.3.2:7400', { layers, spec: unsignedOk }), keys }))
  t.regex(noSigners?.message ?? '', /^layer hubs \("spec:fixed-hubs"\): plugins load from the spec repo only from signed commits: set spec.allowedSigners/)

  // A commit nobody signed is refused, naming the layer.
  await work.write('plugins/fixed-hubs/index.js', fixedHubs.replace('fixed: true', 'fixed: "tampered"'))
  const unsigned = await work.commit('not signed')
  await work.push()
  const refused = await t.throwsAsync(startNode({ config: image('s3', '127.78.3.3:7400', { layers, spec }), keys }))
  t.is((refused as OriginError).code, 'E_CONFIG_INVALID')
  t.regex(refused?.message ?? '', new RegExp(`^layer hubs \\("spec:fixed-hubs"\\): the spec repo's commit ${unsigned.slice(0, 12)} is refused: .*not signed`))
})

// One module that replaces every layer with the built-in wrapped: each says it was made, the
// scheduler counts its calls and the runtime the runs it starts.
const wrapEveryLayer = `
    const { builtInLayers } = require(${JSON.stringify(resolve(__dirname, '..', 'node', 'assembly'))})
    const seen = globalThis.originPluginsTest ??= { made: [], schedules: 0, runs: [] }
    for (const layer of Object.keys(builtInLayers)) {
      exports[layer] = (init) => (c) => {
        const made = builtInLayers[layer](init)(c)
        seen.made.push(layer)
        if (layer === 'scheduler') return { schedule: (input) => { seen.schedules++; return made.schedule(input) } }
        if (layer === 'runtime') {
          return { ...made, process: (init) => { const rt = made.process(init); return { ...rt, start: (req) => { seen.runs.push(req.id); return rt.start(req) } } } }
        }
        return made
      }
    }
`

test.serial('plugins: every layer named in image.json (spec by its old name) is made by the plugin, and the node runs a spec through them', async (t) => {
  await writeFile(join(dir, 'wrap.js'), wrapEveryLayer)
  const specDir = join(dir, 'wrap-spec')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1 }))
  const sleeper = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs', 'sleeper.js')
  await writeFile(join(specDir, 'services', 'one.json'), JSON.stringify({ run: { command: process.execPath, args: [sleeper] }, placement: { kind: 'singleton' }, stopGraceMs: 500 }))
  const named = ['discovery', 'membership', 'hubs', 'spec', 'scheduler', 'runtime', 'api', 'state', 'proxy', 'supervisor', 'journal', 'health', 'control']
  const layers = { transport: { use: 'transport-memory', config: { network: 'plugins-wrap' } }, ...Object.fromEntries(named.map((l) => [l, { use: join(dir, 'wrap.js') }])) }
  const node = await startNode({ config: image('w1', '127.78.4.1:7400', { layers, specDir }), keys })
  t.teardown(async () => await node.stop())
  const seen = (globalThis as unknown as { originPluginsTest: { made: string[], schedules: number, runs: string[] } }).originPluginsTest
  t.deepEqual([...seen.made].sort(), named.map((l) => l === 'spec' ? 'desired' : l).sort())
  const ready = await waitFor(() => node.supervisor.report().find((i) => i.service === 'one' && i.status.state === 'ready'), { what: 'the singleton ready' })
  t.is(ready.node, node.id)
  t.true(seen.schedules > 0, 'the supervisor placed it with the scheduler layer')
  t.deepEqual(seen.runs, [ready.instance], 'the runtime layer started its run')
})

test.serial('plugins: a dependency a plugin names that this node lacks fails the assembly naming the layer, and nothing starts', async (t) => {
  await writeFile(join(dir, 'needs-lease.js'), fixedHubs + '\n    exports.dependencies = ["membership", "lease"]\n')
  const config = image('d1', '127.78.5.1:7400', {
    layers: { transport: { use: 'transport-memory', config: { network: 'plugins-needs' } }, hubs: { use: join(dir, 'needs-lease.js'), config: { names: ['d1'] } } }
  })
  const err = await t.throwsAsync(startNode({ config, keys }))
  t.is((err as OriginError).code, 'E_CONFIG_INVALID')
  t.regex(err?.message ?? '', /^layer hubs \(".*needs-lease.js"\): needs lease, which this node does not give it \(it gives: clock, membership, log\)$/)
  t.deepEqual(namedNetwork('plugins-needs').addresses, [])
})

test.serial('plugins: node processes whose image.json names discovery-file find each other once the file lists one of them', async (t) => {
  const c = await TestCluster.create()
  t.teardown(async () => await c.cleanup())
  const peers = join(dir, 'cluster-peers')
  await writeFile(peers, '# nobody yet\n')
  const image = { layers: { discovery: { use: 'discovery-file', config: { path: peers, intervalMs: 300 } } } }
  // No seeds: each originates a cluster of its own.
  await c.start({ name: 'f1', seeds: [], image })
  await c.start({ name: 'f2', seeds: [], image })
  await c.waitForView({ f1: 'alive' }, { on: ['f1'] })
  await c.waitForView({ f2: 'alive' }, { on: ['f2'] })
  t.is(Object.keys(await c.view('f1')).length, 1)
  // The file is edited: the watch sees it, membership tries the address, the two merge.
  await writeFile(peers, `${c.node('f1').address}\n`)
  await c.explainFailure(async () => await c.waitForView({ f1: 'alive', f2: 'alive' }, { timeoutMs: 20_000 }))
  t.regex(await c.node('f2').log(), /discovery.*file .*cluster-peers: .*7400/)
})

test('plugins: a built-in layer declares what it needs, checked at assembly like a plugin\'s dependencies', (t) => {
  for (const layer of Object.keys(builtInLayers)) t.true((builtInDependencies as Record<string, readonly string[]>)[layer].length > 0, layer)
  const err = t.throws(() => assemble('hubs', 'built-in', () => ({ start: async () => {}, stop: async () => {} }), { components: { log: {} }, needs: builtInDependencies.hubs }))
  t.regex(err.message, /^layer hubs \("built-in"\): needs membership, which this node does not give it \(it gives: log\)$/)
})
