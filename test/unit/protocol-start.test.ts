/**
 * A layer does nothing before start(): a node assembled by `startNode` on the in-memory
 * transport (plugins/transport-memory), with each layer's factory wrapped to say when it
 * builds and when it starts, registers no handler while any layer is being built, and
 * each method while the layer that owns it starts. Once up, the node serves every method
 * of the mesh and operator tables (node/protocol), each once.
 */
import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { builtInLayers, startNode, type Layers } from '../../node/assembly'
import { mesh } from '../../node/protocol/mesh'
import { operator } from '../../node/protocol/operator'
import type { Method, Transport } from '../../node/transport/types'
import { memoryNetwork } from '../../plugins/transport-memory'
import { fastMembership, makeKeys } from '../helpers/cluster'

let dir = ''
let keys = ''
test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-protocol-start-'))
  keys = await makeKeys(join(dir, 'keys'), 'test')
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

/** Which method each layer serves (by name prefix); the rest are control's. */
function owner (method: string): string {
  if (method.startsWith('mesh.')) return 'membership'
  if (method.startsWith('spec.')) return 'desired'
  if (method.startsWith('state.')) return 'state'
  if (method.startsWith('proxy.')) return 'proxy'
  return 'control'
}

test('protocol: no layer registers a handler before its start(); a started node serves every table method once, from the layer that owns it', async (t) => {
  const net = memoryNetwork()
  /** What the node is doing now: `building <layer>`, `starting <layer>`, or ''. */
  let doing = ''
  const registered: Array<{ method: string, during: string }> = []

  // The real in-memory transport, with handle() counted on the way through.
  const transport: Layers['transport'] = (init) => (c) => {
    const real: Transport = net.transport(init)(c)
    const handle = real.handle.bind(real)
    real.handle = (m: Method) => { registered.push({ method: m.name, during: doing }); handle(m) }
    return real
  }
  // Each other layer, built and started as usual, saying when it builds and when it starts.
  const watched = (name: keyof Layers): unknown => (init: unknown) => (c: unknown) => {
    const built = (builtInLayers[name] as any)(init)
    doing = `building ${name}`
    const layer = built(c)
    doing = ''
    if (typeof layer?.start === 'function') {
      const start = layer.start.bind(layer)
      layer.start = async () => {
        doing = `starting ${name}`
        try { return await start() } finally { doing = '' }
      }
    }
    return layer
  }
  const names = ['membership', 'hubs', 'desired', 'api', 'state', 'proxy', 'supervisor', 'journal', 'health', 'control'] as const
  const layers = Object.fromEntries(names.map((n) => [n, watched(n)])) as Partial<Layers>

  const node = await startNode({
    config: {
      cluster: 'test',
      listen: '127.78.0.1:7400',
      seeds: [],
      data: join(dir, 'n1'),
      name: 'n1',
      labels: {},
      characteristics: { cpus: 2, memoryMb: 1024 },
      membership: fastMembership,
      hubs: {},
      log: { level: 'error' }
    },
    keys,
    layers: { ...layers, transport }
  })
  t.teardown(async () => { await node.stop() })

  t.deepEqual(registered.filter((r) => !r.during.startsWith('starting ')), [], 'nothing is registered while a layer is built, or outside a start')
  const wrongLayer = registered.filter((r) => r.during !== `starting ${owner(r.method)}`)
  t.deepEqual(wrongLayer, [], 'each method is registered by the start of the layer that owns it')

  const served = registered.map((r) => r.method).sort()
  const tables = [...Object.keys(mesh), ...Object.keys(operator)].sort()
  t.deepEqual(served, tables, 'the node serves exactly the methods of the mesh and operator tables, each once')
})
