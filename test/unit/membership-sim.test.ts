/**
 * The real membership code for many nodes on the simulated network and virtual clock
 * (sim/): a crash is seen dead by every node within the suspicion bounds, nobody live is
 * taken for dead, a partitioned minority loses touch with the majority before the
 * majority can declare it dead (what singleton fencing relies on), and a seed gives the
 * same run every time. A node that answers late is suspected only while its peers learn
 * its round trips, then never.
 */
import test from 'ava'
import { seededRandom, VirtualClock } from '../../sim/clock'
import { SimCluster } from '../../sim/cluster'
import { SimNetwork } from '../../sim/network'
import { fenceWindowMs, membershipDefaults } from '../../node/membership'

const START = Date.UTC(2026, 0, 1)

async function formed (n: number, seed: number): Promise<{ clock: VirtualClock, net: SimNetwork, cluster: SimCluster }> {
  const clock = new VirtualClock(START)
  const net = new SimNetwork(clock, seededRandom(seed), { latencyMs: 0.5, jitterMs: 1, loss: 0 })
  const cluster = new SimCluster(clock, net, {}, seed)
  for (let i = 0; i < n; i++) clock.after(i * 10, () => { void cluster.add() })
  while (!(cluster.members.size === n && cluster.converged())) {
    if (clock.now() - START > 60_000) throw new Error('not formed within 60 s of virtual time')
    await clock.runUntil(clock.now() + 100)
  }
  await clock.runUntil(clock.now() + 2000)
  return { clock, net, cluster }
}

/** Crash one node: each other node's crash -> dead time, and any live node taken for dead. */
async function crashOne (seed: number): Promise<{ times: number[], falseDeaths: string[] }> {
  const { clock, cluster } = await formed(12, seed)
  const falseDeaths: string[] = []
  const victim = cluster.live()[5]
  cluster.onBelief((b) => { if (b.status === 'dead' && b.id !== victim.id) falseDeaths.push(`${b.observer}: ${b.id}`) })
  const at = clock.now()
  cluster.crash(victim.id)
  await clock.runUntil(at + 10_000)
  return { times: cluster.live().map((x) => (x.deadAt.get(victim.id) ?? Infinity) - at), falseDeaths }
}

test('sim: a crashed node is dead on all 11 others between suspectAfterMs and deadAfterMs plus a probe pass, and nobody else', async (t) => {
  const { times, falseDeaths } = await crashOne(3)
  t.deepEqual(falseDeaths, [])
  const pass = 12 * membershipDefaults.gossipIntervalMs
  for (const ms of times) {
    t.true(ms >= membershipDefaults.suspectAfterMs, `dead after ${ms} ms`)
    t.true(ms <= membershipDefaults.deadAfterMs + pass, `dead after ${ms} ms`)
  }
})

test('sim: the same seed gives the same run', async (t) => {
  const a = await crashOne(9)
  const b = await crashOne(9)
  t.deepEqual(a, b)
})

test('sim: a partitioned minority is out of touch with a majority before the majority declares any of it dead', async (t) => {
  const { clock, net, cluster } = await formed(9, 5)
  const live = cluster.live()
  const minority = new Set(live.slice(5).map((x) => x.id))
  let firstDead = Infinity
  cluster.onBelief((b) => { if (b.status === 'dead' && minority.has(b.id) && !minority.has(b.observer)) firstDead = Math.min(firstDead, b.at) })
  const cut = clock.now()
  net.partition((address) => live.some((x) => x.address === address && minority.has(x.id)) ? 1 : 0)
  const lost = new Map<string, number>()
  while (clock.now() - cut < 5000) {
    await clock.runUntil(clock.now() + 10)
    for (const x of live) {
      // The supervisor's quorum: itself and the members reachable within its fence time.
      if (minority.has(x.id) && !lost.has(x.id) && x.m.reachable(membershipDefaults.suspectAfterMs).size + 1 <= live.length / 2) lost.set(x.id, clock.now())
    }
  }
  t.is(lost.size, minority.size)
  t.true(Number.isFinite(firstDead), 'the majority declared the minority dead')
  for (const [id, at] of lost) t.true(at < firstDead, `${id} out of touch at +${at - cut} ms, first dead verdict at +${firstDead - cut} ms`)
})

/** One node of 12 answers `slowMs` late: the suspicions of it, each observer's belief, in [from, to) ms after. */
async function slowNode (slowMs: number): Promise<{ early: number, late: number, deaths: number }> {
  const { clock, net, cluster } = await formed(12, 7)
  const slow = cluster.live()[3]
  const at = clock.now()
  let early = 0
  let late = 0
  let deaths = 0
  cluster.onBelief((b) => {
    if (b.id !== slow.id) return
    if (b.status === 'dead') deaths++
    if (b.status === 'suspect') { if (b.at - at < 20_000) early++; else late++ }
  })
  net.setSlow(slow.address, slowMs)
  await clock.runUntil(at + 60_000)
  return { early, late, deaths }
}

test('sim: a node 100 ms late is never suspected (its peers wait for its round trips, not a fixed 80 ms)', async (t) => {
  const { early, late, deaths } = await slowNode(100)
  t.is(early + late, 0)
  t.is(deaths, 0)
})

test('sim: a node 200 ms late (beyond a period) is suspected only while each peer takes its first sample, then never', async (t) => {
  const { early, late, deaths } = await slowNode(200)
  t.is(deaths, 0)
  t.is(late, 0, `${early} suspicions in the first 20 s`)
})

test('sim: at 50 members the nodes told to keep in touch (a singleton runs or waits there) are in touch with a majority within the fence window at every check, which a fixed suspectAfterMs is not; the idle rest only probe', async (t) => {
  const { clock, net, cluster } = await formed(50, 11)
  const window = fenceWindowMs(membershipDefaults, 50)
  // What the supervisor's fence clock does on the nodes a singleton runs or waits on: here 3 of the 50.
  const watchers = cluster.live().slice(0, 3)
  const keep = (): void => { for (const x of watchers) x.m.keepInTouch?.(3 * window) }
  keep()
  await clock.runUntil(clock.now() + 2 * window)
  let checks = 0
  let outOfTouch = 0
  let outOfTouchFixed = 0
  const sent = (): number => cluster.live().reduce((sum, x) => sum + net.traffic(x.address).sentMsgs, 0)
  const sent0 = sent()
  const t0 = clock.now()
  for (let i = 0; i < 50; i++) {
    await clock.runUntil(clock.now() + 100)
    if (i % 5 === 0) keep()
    for (const x of watchers) {
      checks++
      if (x.m.reachable(window).size + 1 <= 25) outOfTouch++
      if (x.m.reachable(membershipDefaults.suspectAfterMs).size + 1 <= 25) outOfTouchFixed++
    }
  }
  t.is(outOfTouch, 0, `${window} ms window`)
  t.true(outOfTouchFixed > checks / 2, `with ${membershipDefaults.suspectAfterMs} ms: out of touch in ${outOfTouchFixed} of ${checks} checks`)
  // Messages a period over the cluster (each ping, ack and push-pull counts): a probe and its ack per
  // node and the watchers' pings, not the 2 x (1 + fanout) a node that every node fanning out would send.
  const perPeriod = (sent() - sent0) / ((clock.now() - t0) / membershipDefaults.gossipIntervalMs)
  t.true(perPeriod < 50 * (1 + membershipDefaults.fanout), `${perPeriod.toFixed(0)} messages a period`)
  t.log(`${perPeriod.toFixed(0)} messages a period over 50 nodes, 3 keeping in touch`)
})
