/**
 * The plugin loader (node/plugins.ts) and image.json's `layers`: a name under plugins/, a
 * path from the image dir or an absolute one; a config checked against the plugin's own
 * schema; every refusal names the layer.
 */
import test from 'ava'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { parseImageConfig, readImageConfig } from '../../node/config/image'
import { assemble, LAYER_SHAPE, loadLayerPlugin, loadLayerPlugins } from '../../node/plugins'
import { namedNetwork } from '../../plugins/transport-memory'
import { refusal } from '../helpers/refusal'

let dir = ''
test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-plugins-unit-'))
  // A hubs plugin by path: records the init it was given.
  await writeFile(join(dir, 'my-hubs.js'), `
    exports.configSchema = { type: 'object', additionalProperties: false, properties: { favourite: { type: 'string' } } }
    exports.hubs = (init) => (components) => ({ init, components, start: async () => {}, stop: async () => {} })
  `)
  await writeFile(join(dir, 'default-export.js'), 'module.exports = (init) => () => ({ init, start: async () => {}, stop: async () => {} })')
  await writeFile(join(dir, 'nothing.js'), 'exports.somethingElse = 1')
  await writeFile(join(dir, 'broken.js'), 'throw new Error("boom at load")')
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

test('plugins: a name is a plugin under the project plugins/, its factory made with the config laid over the init', (t) => {
  const p = loadLayerPlugin('transport', { use: 'transport-memory', config: { network: 'unit-a' } })
  t.is(p.layer, 'transport')
  t.regex(p.file, /plugins[/\\]transport-memory$/)
  const made = p.factory({ listen: '127.0.0.1:1' })({ identity: { ca: '', cert: '', key: '', cluster: 't' }, log: undefined as any })
  t.is(typeof made.start, 'function')
  t.is(namedNetwork('unit-a') !== namedNetwork('unit-b'), true)
})

test('plugins: a relative path is taken from the base dir, an absolute one as it is; default exports count', (t) => {
  const rel = loadLayerPlugin('hubs', { use: './my-hubs.js', config: { favourite: 'n1' } }, dir)
  const made = rel.factory({ policy: { count: 3 } })({ membership: 'm' })
  t.deepEqual(made.init, { policy: { count: 3 }, favourite: 'n1' })
  t.deepEqual(made.components, { membership: 'm' })
  const abs = loadLayerPlugin('spec', { use: join(dir, 'default-export.js') }, '/nowhere')
  t.deepEqual(abs.factory({ dataDir: 'd' })({}).init, { dataDir: 'd' })
})

test('plugins: a bad config is refused naming the layer and the field', (t) => {
  const e = refusal(() => loadLayerPlugin('transport', { use: 'transport-memory', config: { network: 5 } }))
  t.is(e.code, 'E_CONFIG_INVALID')
  t.regex(e.message, /^layer transport \("transport-memory"\): layers\.transport\.config is invalid: \/network: must be string/)
  t.is(e.data.layer, 'transport')
  const extra = refusal(() => loadLayerPlugin('hubs', { use: './my-hubs.js', config: { colour: 'red' } }, dir))
  t.regex(extra.message, /^layer hubs .*unknown field "colour"/)
  const missing = refusal(() => loadLayerPlugin('discovery', { use: 'discovery-file', config: {} }))
  t.regex(missing.message, /^layer discovery .*missing required field "path"/)
})

test('plugins: no such plugin, a module that cannot load and one without a factory are refused naming the layer', (t) => {
  t.regex(refusal(() => loadLayerPlugin('hubs', { use: 'no-such-plugin' })).message, /^layer hubs \("no-such-plugin"\): no plugin named "no-such-plugin" in /)
  t.regex(refusal(() => loadLayerPlugin('hubs', { use: './missing.js' }, dir)).message, /^layer hubs \(".\/missing.js"\): module .*missing.js cannot be loaded/)
  t.regex(refusal(() => loadLayerPlugin('desired', { use: './broken.js' }, dir)).message, /^layer desired .*cannot be loaded: boom at load/)
  t.regex(refusal(() => loadLayerPlugin('membership', { use: './nothing.js' }, dir)).message, /^layer membership .*exports no membership factory/)
  t.regex(refusal(() => loadLayerPlugins({ kernel: { use: 'x' } } as any)).message, /^layer kernel .*not a layer a plugin can replace \(transport, discovery, lease, membership, hubs, desired, scheduler, runtime, api, /)
})

test('plugins: assembly refuses a factory that throws (a missing dependency) or makes no start/stop, naming the layer', (t) => {
  const e = refusal(() => assemble('hubs', 'my-hubs', () => { throw new Error('needs components.membership') }))
  t.is(e.message, 'layer hubs ("my-hubs"): cannot be assembled: needs components.membership')
  t.regex(refusal(() => assemble('spec', 'x', () => ({ start: async () => {} }))).message, /^layer spec \("x"\): the factory made an object without stop\(\)/)
  const ok = { start: async () => {}, stop: async () => {} }
  t.is(assemble('spec', 'x', () => ok), ok)
})

test('plugins: a dependency a plugin names and the node does not give fails at assembly naming the layer, before the factory runs', (t) => {
  let made = 0
  const factory = (): unknown => { made++; return { start: async () => {}, stop: async () => {} } }
  const e = refusal(() => assemble('hubs', 'needy.js', factory, { components: { membership: {}, lease: undefined, log: {} }, needs: ['membership', 'lease'] }))
  t.is(e.message, 'layer hubs ("needy.js"): needs lease, which this node does not give it (it gives: membership, log)')
  t.is(e.data.missing, 'lease')
  t.is(made, 0)
  t.notThrows(() => assemble('hubs', 'needy.js', factory, { components: { membership: {}, lease: {} }, needs: ['membership', 'lease'] }))
  t.is(made, 1)
})

test('plugins: a module says what it needs in "dependencies"; anything but a list of names is refused', async (t) => {
  await writeFile(join(dir, 'needy.js'), 'exports.dependencies = ["lease"]; exports.hubs = () => () => ({ start: async () => {}, stop: async () => {} })')
  await writeFile(join(dir, 'needy-bad.js'), 'exports.dependencies = "lease"; exports.hubs = () => () => ({})')
  t.deepEqual(loadLayerPlugin('hubs', { use: './needy.js' }, dir).needs, ['lease'])
  t.deepEqual(loadLayerPlugin('hubs', { use: './my-hubs.js' }, dir).needs, [])
  t.regex(refusal(() => loadLayerPlugin('hubs', { use: './needy-bad.js' }, dir)).message, /^layer hubs .*exports "dependencies" that is not a list of component names/)
})

test('plugins: the scheduler and a runtime are checked for their own shape, not start/stop', (t) => {
  const scheduler = { schedule: () => ({}) }
  t.is(assemble('scheduler', 'x', () => scheduler, { shape: LAYER_SHAPE.scheduler }), scheduler)
  t.regex(refusal(() => assemble('scheduler', 'x', () => ({ start: async () => {}, stop: async () => {} }), { shape: LAYER_SHAPE.scheduler })).message, /^layer scheduler \("x"\): the factory made an object without schedule\(\)/)
  t.regex(refusal(() => assemble('runtime', 'x', () => undefined, { shape: LAYER_SHAPE.runtime })).message, /^layer runtime \("x"\): the factory made undefined, not an object/)
  const onlyProcess = { process: () => ({}) }
  t.is(assemble('runtime', 'x', () => onlyProcess, { shape: LAYER_SHAPE.runtime }), onlyProcess)
  t.regex(refusal(() => assemble('runtime', 'x', () => ({ kind: 'process', start: () => {} }), { shape: LAYER_SHAPE.runtime })).message, /^layer runtime \("x"\): the factory made a runtime named "kind"; runtimes are process, container/)
  t.regex(refusal(() => assemble('runtime', 'x', () => ({ container: 'docker' }), { shape: LAYER_SHAPE.runtime })).message, /^layer runtime \("x"\): the factory's runtime "container" is not a factory function/)
})

test('plugins: "spec" is the old name of the desired layer: accepted, loaded as desired, refused beside "desired"', (t) => {
  const loaded = loadLayerPlugins({ spec: { use: join(dir, 'default-export.js') } })
  t.deepEqual(Object.keys(loaded), ['desired'])
  t.is(loaded.desired?.layer, 'desired')
  const both = refusal(() => loadLayerPlugins({ desired: { use: join(dir, 'default-export.js') }, spec: { use: join(dir, 'default-export.js') } }))
  t.regex(both.message, /^layer desired .*named twice in layers, as desired and as its old name spec/)
})

test('image config: layers name a plugin per layer; unknown layers and a missing use are refused', (t) => {
  const c = parseImageConfig(JSON.stringify({ cluster: 'p', layers: { transport: { use: 'transport-memory', config: { network: 'x' } } } }))
  t.deepEqual(c.layers, { transport: { use: 'transport-memory', config: { network: 'x' } } })
  t.is(parseImageConfig(JSON.stringify({ cluster: 'p' })).layers, undefined)
  t.regex(refusal(() => parseImageConfig(JSON.stringify({ cluster: 'p', layers: { kernel: { use: 'x' } } }))).message, /\/layers: unknown field "kernel"/)
  for (const layer of ['runtime', 'scheduler', 'api', 'control', 'state', 'proxy', 'journal', 'health', 'desired', 'spec']) {
    t.deepEqual(parseImageConfig(JSON.stringify({ cluster: 'p', layers: { [layer]: { use: 'x' } } })).layers, { [layer]: { use: 'x' } }, layer)
  }
  t.regex(refusal(() => parseImageConfig(JSON.stringify({ cluster: 'p', layers: { hubs: { config: {} } } }))).message, /\/layers\/hubs: missing required field "use"/)
  t.regex(refusal(() => parseImageConfig(JSON.stringify({ cluster: 'p', layers: { hubs: { use: 'x', config: 3 } } }))).message, /\/layers\/hubs\/config: must be object/)
})

test('image config: a layer plugin path is taken from the image dir; a name stays a name', async (t) => {
  await writeFile(join(dir, 'image.json'), JSON.stringify({ cluster: 'p', layers: { hubs: { use: 'my-hubs.js' }, transport: { use: 'transport-memory' }, spec: { use: '/abs/x.js' } } }))
  const c = await readImageConfig(join(dir, 'image.json'))
  t.is(c.layers?.hubs?.use, join(dir, 'my-hubs.js'))
  t.is(c.layers?.transport?.use, 'transport-memory')
  t.is(c.layers?.spec?.use, '/abs/x.js')
})
