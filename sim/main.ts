/**
 * `npm run sim -- --nodes 1000 --scenario crash|partition|churn|loss|slow|oneway --seed N`: the real
 * membership code (SWIM, Lifeguard, deltas, push-pull, the sense checks, downing) for N
 * nodes in one process, on a simulated network (latency, loss, partitions, crashes) and a
 * virtual clock. Prints how long a cluster takes to form and to take in a new node, how
 * long a crash takes to be seen dead (p50/p99 over every observer of every crash), false
 * suspicions and deaths, and messages and bytes per node per second. The same seed gives
 * the same figures.
 *
 * Options: --nodes (5), --scenario (crash), --seed (1), --rounds (crashes, 10), --duration
 * (s of the loss/churn/slow/oneway scenarios, 60), --loss (on every link, 0), --node-loss (on one
 * node, 0.05 in the loss scenario), --slow-ms (what one node's messages take longer in the
 * slow scenario, 150; the oneway scenario loses every message from one node to another), --latency / --jitter (ms, 0.5 / 1), and any membership
 * setting by name (--gossipIntervalMs 200, --suspectAfterMs 600, ...). --json prints one
 * JSON object instead; --progress says on stderr how far the virtual clock is.
 */
import { membershipDefaults, type MembershipInit } from '../node/membership'
import { seededRandom, VirtualClock } from './clock'
import { SimCluster, type SimMember } from './cluster'
import { SimNetwork } from './network'
import { report, type Figures } from './report'

const SCENARIOS = ['crash', 'partition', 'churn', 'loss', 'slow', 'oneway'] as const
type Scenario = typeof SCENARIOS[number]

interface Args {
  nodes: number
  scenario: Scenario
  seed: number
  rounds: number
  durationS: number
  loss: number
  nodeLoss: number
  slowMs: number
  latencyMs: number
  jitterMs: number
  json: boolean
  progress: boolean
  membership: Omit<MembershipInit, 'seeds'>
}

const START = Date.UTC(2026, 0, 1)

export function parseArgs (argv: string[]): Args {
  const a: Args = { nodes: 5, scenario: 'crash', seed: 1, rounds: 10, durationS: 60, loss: 0, nodeLoss: -1, slowMs: 150, latencyMs: 0.5, jitterMs: 1, json: false, progress: false, membership: {} }
  const names: Record<string, keyof Args> = { '--nodes': 'nodes', '--seed': 'seed', '--rounds': 'rounds', '--duration': 'durationS', '--loss': 'loss', '--node-loss': 'nodeLoss', '--slow-ms': 'slowMs', '--latency': 'latencyMs', '--jitter': 'jitterMs' }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    if (flag === '--json') { a.json = true; continue }
    if (flag === '--progress') { a.progress = true; continue }
    const value = argv[++i]
    if (value === undefined) throw new Error(`${flag} needs a value`)
    if (flag === '--scenario') {
      if (!(SCENARIOS as readonly string[]).includes(value)) throw new Error(`--scenario must be one of ${SCENARIOS.join(', ')}, not "${value}"`)
      a.scenario = value as Scenario
      continue
    }
    const n = Number(value)
    if (!Number.isFinite(n) || n < 0) throw new Error(`${flag} must be a number >= 0, not "${value}"`)
    const setting = flag.replace(/^--/, '')
    if (names[flag] !== undefined) (a as unknown as Record<string, number>)[names[flag]] = n
    else if (Object.hasOwn(membershipDefaults, setting)) (a.membership as Record<string, number>)[setting] = n
    else throw new Error(`unknown option ${flag} (membership settings: ${Object.keys(membershipDefaults).join(', ')})`)
  }
  if (!Number.isInteger(a.nodes) || a.nodes < 2 || a.nodes > 5000) throw new Error('--nodes must be an integer from 2 to 5000')
  if (a.loss >= 1 || a.nodeLoss >= 1) throw new Error('--loss and --node-loss must be below 1')
  return a
}

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  progress = args.progress
  const wall = Date.now()
  const clock = new VirtualClock(START)
  const random = seededRandom(args.seed)
  const net = new SimNetwork(clock, random, { latencyMs: args.latencyMs, jitterMs: args.jitterMs, loss: args.loss })
  const membership = { maxMembers: Math.max(1000, args.nodes + 100), ...args.membership }
  const cluster = new SimCluster(clock, net, membership, args.seed)
  const f: Figures = { args: { ...args, membership: { ...membershipDefaults, ...membership } }, falseSuspicions: 0, falseDeaths: 0, detections: [], deadOnAll: [], joins: [] }
  const gone = new Set<string>()
  /** Pairs (observer, member) on two sides of a partition: their verdicts are not false. */
  let across: (a: string, b: string) => boolean = () => false
  // After a partition heals, each side hears the other's verdicts on it (dead, at the
  // incarnation it had) until the member refutes them: those are not counted.
  let counting = true
  cluster.onBelief((b) => {
    if (!counting || b.observer === b.id || gone.has(b.id) || across(b.observer, b.id)) return
    if (b.status === 'suspect') f.falseSuspicions++
    if (b.status === 'dead') f.falseDeaths++
  })

  // Forming: nodes start 10 ms apart, each seeded with the first live ones.
  for (let i = 0; i < args.nodes; i++) clock.after(i * 10, () => { void cluster.add() })
  f.formedMs = await until(clock, () => cluster.members.size === args.nodes && cluster.converged(), 600_000) - START
  await clock.runUntil(clock.now() + 3000)

  f.steady = await traffic(clock, net, cluster, 10_000)
  f.joins.push(await join(clock, cluster))

  if (args.scenario === 'crash') {
    // Each crashed node is replaced (a new id, as a machine restarted with a wiped disk), so the cluster keeps its size.
    for (let r = 0; r < args.rounds; r++) {
      await crash(clock, cluster, random, gone, f)
      f.joins.push(await join(clock, cluster))
    }
  } else if (args.scenario === 'churn') {
    const end = clock.now() + args.durationS * 1000
    while (clock.now() < end) {
      await crash(clock, cluster, random, gone, f)
      f.joins.push(await join(clock, cluster))
    }
  } else if (args.scenario === 'loss') {
    const lossy = cluster.live()[1]
    net.setLoss(lossy.address, args.nodeLoss < 0 ? 0.05 : args.nodeLoss)
    f.lossyNode = lossy.id
    f.underLoss = await traffic(clock, net, cluster, args.durationS * 1000)
  } else if (args.scenario === 'slow') {
    // One node answers late (an overloaded machine): it must not be taken for dead.
    const slow = cluster.live()[1]
    net.setSlow(slow.address, args.slowMs)
    f.affected = `${slow.id} answers ${args.slowMs} ms late`
    f.underLoss = await traffic(clock, net, cluster, args.durationS * 1000)
  } else if (args.scenario === 'oneway') {
    // One node's messages to another are lost, the other way works (a one-way route):
    // the indirect probes through others must keep the two from declaring each other dead.
    const [, from, to] = cluster.live()
    net.cutLink(from.address, to.address)
    f.affected = `every message from ${from.id} to ${to.id} lost`
    f.underLoss = await traffic(clock, net, cluster, args.durationS * 1000)
  } else {
    const live = cluster.live()
    const minority = new Set(live.slice(live.length - Math.floor(live.length / 3)).map((x) => x.address))
    const ids = new Map(live.map((x) => [x.id, minority.has(x.address)]))
    across = (a, b) => ids.get(a) !== ids.get(b)
    const cutAt = clock.now()
    net.partition((address) => minority.has(address) ? 1 : 0)
    const split = await until(clock, () => live.every((x) => live.every((y) => !across(x.id, y.id) || ['dead', 'left'].includes(x.view.get(y.id) ?? ''))), 120_000)
    f.partitionSeenMs = split - cutAt
    await clock.runUntil(clock.now() + 5000)
    const healAt = clock.now()
    counting = false
    net.heal()
    const healed = await until(clock, () => cluster.converged(), 300_000)
    f.healedMs = healed - healAt
    across = () => false
  }
  f.wallS = (Date.now() - wall) / 1000
  f.virtualS = (clock.now() - START) / 1000
  f.events = clock.events
  if (args.json) console.log(JSON.stringify(f))
  else console.log(report(f))
  // Timers of the live nodes are virtual: nothing keeps the process up.
  for (const x of cluster.live()) void x.m.stop().catch(() => undefined)
}

/** Progress on stderr (`--progress`): virtual time, wall time, events. */
let progress = false
const wallStart = Date.now()

/** Run the clock until `done()` (checked every 100 ms of virtual time) or `maxMs`; the time it held. */
async function until (clock: VirtualClock, done: () => boolean, maxMs: number): Promise<number> {
  const end = clock.now() + maxMs
  while (clock.now() < end) {
    await clock.runUntil(clock.now() + 100)
    if (progress && (clock.now() - START) % 5000 < 100) process.stderr.write(`  ${((clock.now() - START) / 1000).toFixed(0)} s virtual, ${((Date.now() - wallStart) / 1000).toFixed(0)} s wall, ${clock.events} events\n`)
    if (done()) return clock.now()
  }
  throw new Error(`not within ${maxMs / 1000} s of virtual time`)
}

/** Messages and bytes each live node sent per second over `ms` of virtual time. */
async function traffic (clock: VirtualClock, net: SimNetwork, cluster: SimCluster, ms: number): Promise<Figures['steady']> {
  const live = cluster.live()
  const before = live.map((x) => net.traffic(x.address))
  await clock.runUntil(clock.now() + ms)
  const after = live.map((x) => net.traffic(x.address))
  const perNode = live.map((_, i) => ({ msgs: (after[i].sentMsgs - before[i].sentMsgs) * 1000 / ms, bytes: (after[i].sentBytes - before[i].sentBytes) * 1000 / ms }))
  const avg = (k: 'msgs' | 'bytes'): number => perNode.reduce((s, p) => s + p[k], 0) / perNode.length
  const max = (k: 'msgs' | 'bytes'): number => Math.max(...perNode.map((p) => p[k]))
  return { msgsPerNodeS: avg('msgs'), bytesPerNodeS: avg('bytes'), maxMsgsPerNodeS: max('msgs'), maxBytesPerNodeS: max('bytes') }
}

/** A new node joins: how long until it and every live node hold each other alive. */
async function join (clock: VirtualClock, cluster: SimCluster): Promise<number> {
  const at = clock.now()
  let x: SimMember | undefined
  void cluster.add().then((m) => { x = m })
  return await until(clock, () => x !== undefined && cluster.converged(), 120_000) - at
}

/** Crash a random live node (not the first, the seed of later joins): how long until each live node holds it dead. */
async function crash (clock: VirtualClock, cluster: SimCluster, random: () => number, gone: Set<string>, f: Figures): Promise<void> {
  const candidates = cluster.live().slice(1)
  const victim = candidates[Math.floor(random() * candidates.length)]
  gone.add(victim.id)
  const at = clock.now()
  cluster.crash(victim.id)
  const watchers = cluster.live()
  const seen = new Map<string, number>()
  await until(clock, () => {
    for (const w of watchers) {
      const s = w.view.get(victim.id)
      if (!seen.has(w.id) && (s === 'dead' || s === 'left')) seen.set(w.id, clock.now())
    }
    return seen.size === watchers.filter((w) => w.crashedAt === undefined).length
  }, 60_000)
  // The checks above run every 100 ms: take each node's own moment from its log line instead.
  for (const w of watchers) {
    if (w.crashedAt !== undefined) continue
    const when = w.deadAt.get(victim.id) ?? seen.get(w.id) ?? clock.now()
    f.detections.push(when - at)
  }
  f.deadOnAll.push(Math.max(...watchers.filter((w) => w.crashedAt === undefined).map((w) => (w.deadAt.get(victim.id) ?? clock.now()) - at)))
  await clock.runUntil(clock.now() + 1000)
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (process.env.SIM_DEBUG === undefined ? err.message : err.stack) : String(err))
  process.exit(1)
})
