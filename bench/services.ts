/**
 * Service benchmarks: time from a node's death to its instances running elsewhere, time
 * for a spec change to replace 10 instances, what a change to one of 10 services restarts,
 * and the supervisor's CPU with 50 idle instances. Real node processes on loopback; the spec comes from a watched directory.
 */
import { defaultConfig, localSettings } from '../node/config'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { TestCluster } from '../test/helpers/cluster'
import { waitFor } from '../test/helpers/wait'
import { connectCluster, type Cluster } from '../repl/client'
import { row } from './stats'

const procs = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs')
// The production defaults (node/config), as a user's image.json would leave them.
const defaults: Record<string, number> = defaultConfig().membership

async function specDir (services: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-bench-spec-'))
  await mkdir(join(dir, 'services'))
  await writeFile(join(dir, 'cluster.json'), JSON.stringify({ name: 'bench', minNodes: 1 }))
  for (const [name, s] of Object.entries(services)) await writeFile(join(dir, 'services', `${name}.json`), JSON.stringify(s))
  return dir
}

async function ready (client: Cluster, name: string) {
  return ((await client.services()).services.find((s) => s.name === name)?.instances ?? []).filter((i) => i.state === 'ready')
}

async function failover (membership: Record<string, number>, label: string): Promise<void> {
  const dir = await specDir({
    single: { run: { command: 'node', args: [join(procs, 'sleeper.js')] }, placement: { kind: 'singleton' }, stopGraceMs: 1000 },
    web: { run: { command: 'node', args: [join(procs, 'http-ok.js')] }, placement: { kind: 'replicas', count: 2 }, health: { http: { path: '/health' }, intervalMs: 100 }, stopGraceMs: 1000 }
  })
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    for (const n of ['n1', 'n2', 'n3']) await c.start({ name: n, membership, logLevel: 'info', image: { specDir: dir } })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node('n1').address }), { what: 'n1' })
    await waitFor(async () => (await ready(client, 'single')).length === 1 && (await ready(client, 'web')).length === 2, { what: 'all ready', timeoutMs: 30_000 })
    const single = (await ready(client, 'single'))[0].node
    const victim = single === 'n1' ? 'n2' : single // keep the observer alive
    const observer = victim === 'n1' ? await connectCluster({ keys: c.keys, as: 'op', address: c.node('n3').address }) : client
    const lost = [...await ready(observer, 'single'), ...await ready(observer, 'web')].filter((i) => i.node === victim).map((i) => i.instance)
    const t0 = performance.now()
    c.node(victim).proc.signal('SIGKILL')
    await waitFor(async () => {
      const all = [...await ready(observer, 'single'), ...await ready(observer, 'web')]
      return lost.every((id) => all.some((i) => i.instance === id && i.node !== victim))
    }, { intervalMs: 20, timeoutMs: 60_000, what: 'instances to run elsewhere' })
    row(`node death to its ${lost.length} instances ready elsewhere (${label})`, `${(performance.now() - t0).toFixed(0)} ms`)
    client.close()
    observer.close()
  } finally {
    await c.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}

async function rollingReplace (): Promise<void> {
  const web = (v: string) => ({ run: { command: 'node', args: [join(procs, 'http-ok.js')], env: { VERSION: v } }, placement: { kind: 'replicas', count: 10 }, resources: { maxInstancesPerNode: 4 }, health: { http: { path: '/health' }, intervalMs: 100 }, stopGraceMs: 1000 })
  const dir = await specDir({ web: web('1') })
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    for (const n of ['n1', 'n2', 'n3']) await c.start({ name: n, membership: defaults, logLevel: 'info', image: { specDir: dir } })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node('n1').address }), { what: 'n1' })
    const before = await waitFor(async () => { const r = await ready(client, 'web'); return r.length === 10 ? r[0].version : undefined }, { what: '10 ready', timeoutMs: 60_000 })
    const t0 = performance.now()
    await writeFile(join(dir, 'services', 'web.json'), JSON.stringify(web('2')))
    await waitFor(async () => (await ready(client, 'web')).filter((i) => i.version !== before).length === 10, { intervalMs: 20, timeoutMs: 120_000, what: '10 replaced' })
    row('spec change to 10 instances replaced, one at a time (3 nodes)', `${(performance.now() - t0).toFixed(0)} ms`)
    client.close()
  } finally {
    await c.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Ten services, each with its own folder; a file of one changes: how many instances restart. */
async function oneOfTen (): Promise<void> {
  const services: Record<string, unknown> = {}
  for (let i = 0; i < 10; i++) services[`s${i}`] = { run: { command: 'node', args: [join(procs, 'sleeper.js')] }, placement: { kind: 'every' }, stopGraceMs: 1000 }
  const dir = await specDir(services)
  for (let i = 0; i < 10; i++) { await mkdir(join(dir, 'services', `s${i}`)); await writeFile(join(dir, 'services', `s${i}`, 'page.txt'), 'one') }
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    for (const n of ['n1', 'n2', 'n3']) await c.start({ name: n, membership: defaults, logLevel: 'info', image: { specDir: dir } })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node('n1').address }), { what: 'n1' })
    const all = async () => (await client.services()).services.flatMap((s) => s.instances.filter((i) => i.state === 'ready'))
    const before = await waitFor(async () => { const r = await all(); return r.length === 30 ? r : undefined }, { what: '30 ready', timeoutMs: 60_000 })
    const t0 = performance.now()
    await writeFile(join(dir, 'services', 's3', 'page.txt'), 'two')
    const after = await waitFor(async () => {
      const r = await all()
      return r.length === 30 && r.filter((i) => i.instance.startsWith('s3@')).every((i) => i.version !== before.find((b) => b.instance === i.instance)?.version) ? r : undefined
    }, { intervalMs: 20, timeoutMs: 60_000, what: 's3 replaced' })
    const ms = performance.now() - t0
    const restarted = after.filter((i) => before.find((b) => b.instance === i.instance)?.startedAt !== i.startedAt)
    row('a file of one of 10 services changes (3 nodes, 30 instances): instances restarted', `${restarted.length} (${[...new Set(restarted.map((i) => i.instance.split('@')[0]))].join(', ')}) in ${ms.toFixed(0)} ms`)
    client.close()
  } finally {
    await c.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}

/** kill -9 of the node running a singleton whose replicated state dir holds 10 MB: time to ready elsewhere, and how old the restored snapshot was. */
async function replicatedFailover (): Promise<void> {
  const dir = await specDir({
    keeper: {
      run: { command: 'sh', args: ['-c', '[ -f "$ORIGIN_STATE_DIR/blob" ] || head -c 10485760 /dev/urandom > "$ORIGIN_STATE_DIR/blob"; exec sleep 100000'] },
      placement: { kind: 'singleton' },
      state: { mode: 'replicate', intervalMs: 1000, copies: 2 },
      stopGraceMs: 1000
    }
  })
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    for (const n of ['n1', 'n2', 'n3']) await c.start({ name: n, membership: defaults, logLevel: 'info', image: { specDir: dir } })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node('n1').address }), { what: 'n1' })
    const first = await waitFor(async () => (await ready(client, 'keeper'))[0], { what: 'keeper ready', timeoutMs: 30_000 })
    // Let a few snapshot rounds copy the 10 MB out.
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const victim = first.node === 'n1' ? 'n1' : first.node
    const observer = victim === 'n1' ? await connectCluster({ keys: c.keys, as: 'op', address: c.node('n2').address }) : client
    const t0 = performance.now()
    c.node(victim).proc.signal('SIGKILL')
    const moved = await waitFor(async () => (await ready(observer, 'keeper')).find((i) => i.node !== victim), { intervalMs: 20, timeoutMs: 60_000, what: 'keeper elsewhere' })
    row('kill -9 to a singleton ready elsewhere, 10 MB replicated state', `${(performance.now() - t0).toFixed(0)} ms`, `(${moved.stateNote ?? '?'})`)
    client.close()
    observer.close()
  } finally {
    await c.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}

async function cpuTicks (pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')
  return Number(f[11]) + Number(f[12]) // utime + stime, in clock ticks
}

async function idleCpu (): Promise<void> {
  const dir = await specDir({ idle: { run: { command: 'node', args: [join(procs, 'sleeper.js')] }, placement: { kind: 'replicas', count: 50 }, resources: { maxInstancesPerNode: 50 }, stopGraceMs: 1000 } })
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    const n = await c.start({ name: 'n1', membership: defaults, logLevel: 'info', image: { specDir: dir } })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: n.address }), { what: 'n1' })
    await waitFor(async () => (await ready(client, 'idle')).length === 50, { what: '50 ready', timeoutMs: 120_000 })
    client.close()
    await new Promise((resolve) => setTimeout(resolve, 3000)) // let start-up settle
    const hz = 100
    const a = await cpuTicks(n.proc.pid)
    const t0 = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 10_000))
    const used = (await cpuTicks(n.proc.pid) - a) / hz
    const secs = (performance.now() - t0) / 1000
    row('node CPU with 50 idle instances (supervising, sampling memory)', `${(100 * used / secs).toFixed(1)} % of a core`)
  } finally {
    await c.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}

export async function benchServices (): Promise<void> {
  console.log('\nservices')
  await failover(defaults, `default timings: dead after ${defaults.deadAfterMs / 1000} s`)
  await failover(localSettings.membership, `local profile: dead after ${localSettings.membership.deadAfterMs / 1000} s`)
  await rollingReplace()
  await oneOfTen()
  await replicatedFailover()
  await idleCpu()
}
