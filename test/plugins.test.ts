/**
 * Plugins named in image.json's `layers` replace their layer when the node is assembled:
 * nodes in one process whose image.json says `transport-memory` and `discovery-file` form a
 * cluster with no socket and no seed, a hubs plugin from a path is the node's hubs layer,
 * and a plugin with a bad config is refused by the layer's name before anything starts.
 */
import test from 'ava'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { parseImageConfig, readImageConfig } from '../node/config/image'
import { OriginError } from '../node/errors'
import { startNode, type RunningNode } from '../node/node'
import { namedNetwork } from '../plugins/transport-memory'
import { fastMembership, makeKeys } from './helpers/cluster'
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
  // A hub policy a user might want: the hubs are the nodes named in the config, whatever they rank.
  await writeFile(plugin, `
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
  `)
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
