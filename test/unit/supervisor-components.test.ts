/**
 * The supervisor's runtimes and schedule are components: a node given others (here through
 * startNode's `layers`, as a plugin would) starts its instances with them, and without them
 * uses the built-ins. One real node in this process on the in-memory transport.
 */
import test, { type ExecutionContext } from 'ava'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { startNode, type RunningNode } from '../../node/assembly'
import type { Runtime } from '../../node/runtime/contract'
import { processRuntime } from '../../node/runtime/process'
import { schedule, type ScheduleFn } from '../../node/scheduler'
import { memoryNetwork } from '../../plugins/transport-memory'
import { fastMembership, makeKeys } from '../helpers/cluster'
import { waitFor } from '../helpers/wait'

const sleeper = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'procs', 'sleeper.js')

let dir = ''
let keys = ''
let specDir = ''
test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-supervisor-components-'))
  keys = await makeKeys(join(dir, 'keys'), 'test')
  specDir = join(dir, 'spec')
  await mkdir(join(specDir, 'services'), { recursive: true })
  await writeFile(join(specDir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1 }))
  const run = { command: process.execPath, args: [sleeper] }
  await writeFile(join(specDir, 'services', 'web.json'), JSON.stringify({ run, placement: { kind: 'replicas', count: 2 }, resources: { maxInstancesPerNode: 2 }, stopGraceMs: 500 }))
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

let nodes = 0
async function oneNode (t: ExecutionContext, layers: Parameters<typeof startNode>[0]['layers'] = {}): Promise<RunningNode> {
  const i = ++nodes
  const net = memoryNetwork()
  const node = await startNode({
    config: { cluster: 'test', listen: `127.78.0.${i}:7400`, seeds: [], data: join(dir, `n${i}`), name: `n${i}`, labels: {}, characteristics: { cpus: 2, memoryMb: 1024 }, membership: fastMembership, hubs: {}, log: { level: 'error' }, specDir },
    keys,
    layers: { transport: net.transport, ...layers }
  })
  t.teardown(async () => { await node.stop() })
  return node
}

const readyIds = (n: RunningNode): string[] => n.supervisor.report().filter((i) => i.status.state === 'ready').map((i) => i.instance).sort()

test.serial('supervisor components: instances start on the process runtime the node is given, and follow the schedule function it is given', async (t) => {
  const started: string[] = []
  const counting = (rt: Runtime): Runtime => ({ kind: rt.kind, start: (req) => { started.push(req.id); return rt.start(req) } })
  const asked: number[] = []
  // Another placement: only the first replica of each service.
  const firstOnly: ScheduleFn = (input) => {
    asked.push(1)
    const s = schedule(input)
    return { ...s, assignments: s.assignments.filter((a) => !/-[1-9][0-9]*$/.test(a.instance)) }
  }
  const node = await oneNode(t, {
    runtime: () => () => ({ process: (init) => counting(processRuntime(init)) }),
    scheduler: () => () => ({ schedule: firstOnly })
  })
  await waitFor(() => readyIds(node).length === 1, { what: 'web-0 ready' })
  t.deepEqual(node.supervisor.current()?.assignments.map((a) => a.instance), ['web-0'], 'the given schedule placed one replica, not two')
  t.deepEqual(readyIds(node), ['web-0'])
  t.deepEqual(started, ['web-0'], 'the given runtime started it')
  t.true(asked.length > 0)
})

test.serial('supervisor components: without them the node uses the built-in runtime and scheduler', async (t) => {
  const node = await oneNode(t)
  await waitFor(() => readyIds(node).length === 2, { what: 'web-0 and web-1 ready' })
  t.deepEqual(readyIds(node), ['web-0', 'web-1'])
})
