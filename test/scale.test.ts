/**
 * Fifty real node processes on this machine, one loopback address each, default failure
 * detection: they form one cluster whose every member table agrees (the live set: alive
 * or suspect, since on 2 shared cores some ack is always late; hubs; the spec each node
 * applied); a partition between 30 and 20 of them (iptables, root only)
 * heals with every view converging again; and killing a random member every few seconds
 * for a minute ends with a consistent table on the survivors and the singleton running
 * exactly once (real processes counted on the host), its replicas at their count.
 *
 * The tests share one cluster, in order: starting 50 nodes on a 2-core machine takes a
 * minute or two of CPU, and each later test starts from the agreement the first checked.
 *
 * Every membership setting is the default. At 50 members the singleton fence looks back
 * further than suspectAfterMs (fenceWindowMs, 1.8 s, which the membership and supervisor
 * compute from the cluster's size): a fixed 600 ms holds a majority in only some 4% of
 * checks (test/unit/membership-sim.test.ts), and every singleton would be fenced at once.
 * The 50 nodes log at info: debug
 * lines of 50 nodes cost more CPU than their gossip.
 */
import test from 'ava'
import { chmod, mkdir, mkdtemp, open, readlink, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { connectCluster } from '../repl/client'
import { TestCluster } from './helpers/cluster'
import { iptablesWorks, partition } from './helpers/iptables'
import { busiest, running as runningProcs } from './helpers/procs'
import { waitFor } from './helpers/wait'

const N = 50
const MAJORITY = 30
/** image.json's membership: nothing set, every default. */
const membership = {}

interface Shared { c: TestCluster, dir: string, names: string[], sides: [string, string], side: Map<string, 0 | 1>, start: (name: string) => Promise<unknown>, restarted: string[] }
let shared: Promise<Shared> | undefined

async function canBind (host: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(7400, host, () => s.close(() => resolve(true)))
  })
}

/**
 * Two /16s of loopback addresses nobody listens on: the first MAJORITY nodes in one, the
 * rest in the other, so two iptables rules cut them apart.
 */
async function addressBlocks (): Promise<[number, number]> {
  for (let tries = 0; tries < 20; tries++) {
    const a = 20 + 2 * Math.floor(Math.random() * 100)
    const hosts = Array.from({ length: N }, (_, i) => i < MAJORITY ? `127.${a}.0.${i + 1}` : `127.${a + 1}.0.${i + 1}`)
    if ((await Promise.all(hosts.map(canBind))).every(Boolean)) return [a, a + 1]
  }
  throw new Error('no two free /16s of loopback addresses')
}

async function cluster (): Promise<Shared> {
  shared ??= (async () => {
    const c = await TestCluster.create()
    const dir = await mkdtemp(join(os.tmpdir(), 'origin-scale-'))
    await mkdir(join(dir, 'services'))
    await chmod(dir, 0o755) // the services run as their own users: what they run must be readable by them
    await writeFile(join(dir, 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1, hubs: { count: 3 } }))
    await writeFile(join(dir, 'single.js'), 'setInterval(() => {}, 1000)')
    await writeFile(join(dir, 'replica.js'), 'setInterval(() => {}, 1000)')
    await writeFile(join(dir, 'services', 'single.json'), JSON.stringify({ run: { command: 'node', args: [join(dir, 'single.js')] }, placement: { kind: 'singleton' }, stopGraceMs: 500 }))
    await writeFile(join(dir, 'services', 'replica.json'), JSON.stringify({ run: { command: 'node', args: [join(dir, 'replica.js')] }, placement: { kind: 'replicas', count: 3 }, stopGraceMs: 500 }))
    const [a, b] = await addressBlocks()
    const names = Array.from({ length: N }, (_, i) => `s${String(i + 1).padStart(2, '0')}`)
    const side = new Map<string, 0 | 1>()
    const start = async (name: string): Promise<unknown> => {
      const i = names.indexOf(name)
      const address = `127.${i < MAJORITY ? a : b}.0.${i + 1}:7400`
      // Seeds: the first three nodes (the first ones start with fewer).
      return await c.start({ name, address, seeds: names.slice(0, Math.min(3, i)), membership, logLevel: 'info', image: { specDir: dir } })
    }
    for (const [i, name] of names.entries()) {
      side.set(name, i < MAJORITY ? 0 : 1)
      await start(name)
    }
    return { c, dir, names, sides: [`127.${a}.0.0/16`, `127.${b}.0.0/16`], side, start, restarted: [] }
  })()
  return await shared
}

test.after.always(async () => {
  if (shared === undefined) return
  const s = await shared.catch(() => undefined)
  if (s === undefined) return
  await s.c.cleanup()
  await rm(s.dir, { recursive: true, force: true })
})

/** `alive`: members alive or suspect (a suspect is a live member whose ack was late; 50 nodes on 2 cores have some at any moment), `suspect` among them. */
let suspectsSeen = 0

interface Seen { alive: string[], suspect: number, hubs: string[], applied?: string, specs: string[] }

/** What `name` says: the members alive in its table, the hubs, the spec it applied and the one each member says it runs. */
async function seen (s: Shared, name: string): Promise<Seen> {
  const client = await connectCluster({ keys: s.c.keys, as: 'op', address: s.c.node(name).address, timeoutMs: 10_000 })
  try {
    const [nodes, hubs, spec] = [await client.nodes(), await client.hubs(), await client.spec()]
    return {
      alive: nodes.filter((r) => r.status === 'alive' || r.status === 'suspect').map((r) => r.id).sort(),
      suspect: nodes.filter((r) => r.status === 'suspect').length,
      hubs: [...hubs.hubs].sort(),
      applied: spec.applied?.id,
      specs: [...new Set(spec.nodes.filter((n) => n.status === 'alive' || n.status === 'suspect').map((n) => n.spec ?? '-'))]
    }
  } finally {
    client.close()
  }
}

/** Every view of `observers`, ten at a time (50 TLS handshakes at once starve the nodes' own timers). */
async function views (s: Shared, observers: string[]): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>()
  for await (const batch of batches(s, observers)) for (const [n, x] of batch) out.set(n, x)
  return out
}

async function * batches (s: Shared, observers: string[]): AsyncGenerator<Array<[string, Seen]>> {
  for (let i = 0; i < observers.length; i += 10) {
    const batch = observers.slice(i, i + 10)
    const got = await Promise.all(batch.map(async (n) => await seen(s, n)))
    yield batch.map((n, k) => [n, got[k]])
  }
}

/**
 * Why the views of `observers` do not agree on `expected` alive (and one hub set, one spec
 * applied everywhere), or undefined when they do. It stops asking at the first batch with a
 * view that disagrees: each view is a TLS handshake and three calls, and fifty of them a
 * second while the cluster settles are load that the 50 nodes on 2 cores feel.
 */
async function disagreement (s: Shared, observers: string[], expected: string[]): Promise<string | undefined> {
  const want = [...expected].sort().join(',')
  let first: Seen | undefined
  let suspects = 0
  for await (const batch of batches(s, observers)) {
    for (const [n, x] of batch) {
      first ??= x
      suspects += x.suspect
      if (x.alive.join(',') !== want) return `${n} holds ${x.alive.length} alive or suspect, not the ${expected.length} expected (missing ${expected.filter((e) => !x.alive.includes(e)).join(' ') || '-'}; extra ${x.alive.filter((e) => !expected.includes(e)).join(' ') || '-'})`
      if (x.hubs.length === 0 || x.hubs.join(',') !== first.hubs.join(',')) return `${n} has hubs ${x.hubs.join(' ')}, ${observers[0]} ${first.hubs.join(' ')}`
      if (x.applied === undefined || x.applied !== first.applied) return `${n} applied spec ${x.applied ?? 'none'}, ${observers[0]} ${first.applied ?? 'none'}`
      if (x.specs.length !== 1 || x.specs[0] !== first.specs[0]) return `${n} sees members running specs ${x.specs.join(' ')}, ${observers[0]} ${first.specs.join(' ')}`
    }
  }
  suspectsSeen = suspects
  return undefined
}

async function agree (s: Shared, observers: string[], expected: string[], timeoutMs: number, each?: () => Promise<void>): Promise<number> {
  const from = Date.now()
  let last: string | undefined
  await s.c.explainFailure(async () => await waitFor(async () => {
    await each?.()
    last = await disagreement(s, observers, expected)
    return last === undefined
  }, { timeoutMs, intervalMs: 1000, what: 'every view to agree' }).catch((err: Error) => { throw new Error(`${err.message}: ${last ?? ''}`) }), 5)
  return Date.now() - from
}

/**
 * The first 64 KiB of a node's log, where a failed start says so: the whole logs of 50
 * nodes, read every second, were megabytes of reading for the test process while the
 * cluster settled.
 */
async function logStart (file: string): Promise<string> {
  const f = await open(file, 'r').catch(() => undefined)
  if (f === undefined) return ''
  try {
    const buf = Buffer.alloc(64 * 1024)
    const { bytesRead } = await f.read(buf, 0, buf.length, 0)
    return buf.subarray(0, bytesRead).toString('utf8')
  } finally {
    await f.close()
  }
}

/**
 * A node that failed to start (its process said `origin node: ...` and ended, or stayed
 * up listening to nobody) is started again once, and the test says why: a failed start is
 * another layer's bug (it was the supervisor racing the health probe's temp file in the
 * data dir, 2 of 50, since fixed), not the membership's, and one missing node would hide what this
 * file measures.
 */
async function reviveFailed (s: Shared): Promise<void> {
  for (const name of s.names) {
    const n = s.c.node(name)
    if (s.restarted.some((r) => r.startsWith(`${name}:`))) continue
    const fatal = /^origin node: .*$/m.exec(await logStart(n.logFile))
    if (n.proc.running && fatal === null) continue
    s.restarted.push(`${name}: ${fatal?.[0] ?? 'its process ended'}`)
    await n.proc.stop(3000)
    await s.start(name)
  }
}

test.serial('scale: 50 node processes form one cluster and every member table agrees: alive set, hubs, spec applied', async (t) => {
  // 50 nodes take most of 2 cores while they form. While each node compiled its schemas at
  // start the cluster churned for up to a quarter of an hour before it settled; compiled
  // ahead (build/schemas.ts) it agreed in 46 to 711 s in CI rehearsals, and with idle
  // periods down to one probe (no empty fanout pings) in 456 and 495 s; two local runs (one
  // beside other load, one starting the nodes one at a time) had not after 10-25 minutes,
  // with suspicions flapping on every node. Once formed it is steady.
  // The bound stays wide: a slow CI machine fails on disagreement, not on time. How long
  // it took is logged below.
  t.timeout(30 * 60_000)
  // Whether the machine is ours: a process left over from earlier tests, busy beside the 50
  // nodes, is the first thing to rule out when they do not settle.
  const others = await busiest()
  t.log(`before the start: load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; busy: ${others.join('; ') || 'nothing over 5% of a core'}`)
  const started = Date.now()
  const s = await cluster()
  const ms = await agree(s, s.names, s.names, 25 * 60_000, async () => await reviveFailed(s))
  if (s.restarted.length > 0) t.log(`started again after a failed start: ${s.restarted.join('; ')}`)
  t.log(`suspect entries over the 50 agreeing views: ${suspectsSeen}`)
  t.log(`50 nodes started and agreeing after ${((Date.now() - started) / 1000).toFixed(0)} s (${(ms / 1000).toFixed(0)} s after the last start)`)
  const v = await views(s, [s.names[0]])
  t.log(`hubs: ${(v.get(s.names[0]) as Seen).hubs.join(' ')}`)
  t.is((v.get(s.names[0]) as Seen).hubs.length, 3)
})

const usable = iptablesWorks()
const faultTest = usable ? test.serial : test.serial.skip
if (!usable) console.log('scale: the partition test is skipped: it needs root and iptables (CI has both)')

faultTest('scale: a partition between 30 and 20 of the 50 nodes heals: after the rules go, every view converges again', async (t) => {
  t.timeout(15 * 60_000)
  const s = await cluster()
  await agree(s, s.names, s.names, 10 * 60_000)
  const majority = s.names.filter((n) => s.side.get(n) === 0)
  const minority = s.names.filter((n) => s.side.get(n) === 1)
  const heal = partition(...s.sides)
  t.teardown(heal)
  const cut = Date.now()
  // Each side holds only itself alive (the other dead, or downed by the majority).
  await agree(s, majority, majority, 5 * 60_000)
  await agree(s, minority, minority, 5 * 60_000)
  const splitMs = Date.now() - cut
  heal()
  const healedAt = Date.now()
  const convergedMs = await agree(s, s.names, s.names, 10 * 60_000)
  t.log(`partition 30 | 20: each side holds only itself alive within ${(splitMs / 1000).toFixed(1)} s; healed -> all 50 views agree in ${(convergedMs / 1000).toFixed(1)} s (views polled every second, 10 nodes at a time)`)
  t.true(Date.now() - healedAt >= convergedMs)
})

test.serial('scale: a random member killed every 5 s for a minute ends with one table on the survivors, the singleton exactly once and 3 replicas', async (t) => {
  t.timeout(20 * 60_000)
  const s = await cluster()
  await agree(s, s.names, s.names, 10 * 60_000)
  const count = async (file: string): Promise<Array<{ pid: number, node: string }>> => {
    const pids = await runningProcs('node', join(s.dir, file))
    const cwds = await Promise.all(pids.map(async (pid) => await readlink(`/proc/${pid}/cwd`).catch(() => '')))
    return pids.map((pid, i) => ({ pid, node: s.names.find((n) => cwds[i].startsWith(s.c.node(n).dir + '/')) ?? '?' }))
  }
  await waitFor(async () => (await count('single.js')).length === 1 && (await count('replica.js')).length === 3, { timeoutMs: 120_000, what: 'the singleton once and 3 replicas' })
  const killed: string[] = []
  let most = 1
  const end = Date.now() + 60_000
  while (Date.now() < end) {
    // Never the first three: they are the seeds, and one of them the test's own window on the cluster.
    const candidates = s.names.slice(3).filter((n) => !killed.includes(n))
    const victim = candidates[Math.floor(Math.random() * candidates.length)]
    const host = (await count('single.js'))[0]?.node
    s.c.node(victim).proc.signal('SIGKILL')
    killed.push(host === victim ? `${victim} (ran the singleton)` : victim)
    const next = Date.now() + 5000
    await waitFor(async () => {
      most = Math.max(most, (await count('single.js')).filter((x) => x.node !== '?').length)
      return Date.now() >= next
    }, { intervalMs: 250, timeoutMs: 10_000 })
  }
  const gone = killed.map((k) => k.split(' ')[0])
  const survivors = s.names.filter((n) => !gone.includes(n))
  const ms = await agree(s, survivors, survivors, 5 * 60_000)
  const single = await waitFor(async () => { const x = await count('single.js'); return x.length === 1 && x[0].node !== '?' && survivors.includes(x[0].node) ? x : undefined }, { timeoutMs: 120_000, what: 'the singleton once, on a survivor' })
  const replicas = await waitFor(async () => { const x = await count('replica.js'); return x.length === 3 && x.every((r) => survivors.includes(r.node)) ? x : undefined }, { timeoutMs: 120_000, what: '3 replicas on survivors' })
  // And it stays so: no second copy started late by a node with a stale view.
  let checks = 0
  await waitFor(async () => {
    const now = await count('single.js')
    if (now.length !== 1) throw new Error(`the singleton runs ${now.length} times: ${JSON.stringify(now)}`)
    return ++checks >= 10
  }, { intervalMs: 300, timeoutMs: 10_000, what: 'the singleton to stay alone' }).catch((err: Error) => t.fail(err.message))
  t.log(`killed ${killed.length}: ${killed.join(', ')}; the ${survivors.length} survivors agree ${(ms / 1000).toFixed(1)} s after the last kill; singleton on ${single[0].node}, replicas on ${replicas.map((r) => r.node).join(' ')}; most copies of the singleton seen at once during the kills: ${most}`)
  t.is(gone.length, new Set(gone).size)
})
