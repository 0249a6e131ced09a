/**
 * Cluster benchmarks: formation time, RPC round trip over mutual TLS, RSS per node idle
 * and after the RPC load, for real node processes on loopback with the default membership
 * timings.
 */
import { TestCluster } from '../test/helpers/cluster'
import { waitFor } from '../test/helpers/wait'
import { connectCluster, type Cluster } from '../repl/client'
import { connectTo, type Connection } from '../node/transport'
import { call } from '../node/protocol/table'
import { operator } from '../node/protocol/operator'
import { loadIdentity } from '../node/keys'
import { cpuMs, idleNodeMemory, memoryMiB, startFloor, throughput } from './floor'
import { percentile, ratio, row, summarize } from './stats'
import { defaultConfig } from '../node/config'

// The production defaults (node/config), as a user's image.json would leave them.
const defaults: Record<string, number> = defaultConfig().membership

/** CPU each node uses a second over `ms` of idling: mean and max, ms/s. */
async function nodesIdleCpu (c: TestCluster, names: string[], ms: number): Promise<{ mean: number, max: number }> {
  const pids = names.map((n) => c.node(n).proc.pid)
  const before = await Promise.all(pids.map(cpuMs))
  const t0 = performance.now()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const after = await Promise.all(pids.map(cpuMs))
  const s = (performance.now() - t0) / 1000
  const each = after.map((v, i) => (v - before[i]) / s)
  return { mean: summarize(each).mean, max: Math.max(...each) }
}

/** Memory of every node: mean and max RSS, mean private part. */
async function nodesMemory (c: TestCluster, names: string[]): Promise<{ rssMean: number, rssMax: number, privateMean: number }> {
  const all = await Promise.all(names.map(async (n) => await memoryMiB(c.node(n).proc.pid)))
  return { rssMean: summarize(all.map((m) => m.rss)).mean, rssMax: Math.max(...all.map((m) => m.rss)), privateMean: summarize(all.map((m) => m.private)).mean }
}

export async function benchCluster (size: number): Promise<void> {
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    console.log(`\n${size} nodes (default membership timings: gossip every ${defaults.gossipIntervalMs} ms)`)
    const names = Array.from({ length: size }, (_, i) => `n${i + 1}`)
    const t0 = performance.now()
    await c.start({ name: names[0], membership: defaults, logLevel: 'info' })
    for (const name of names.slice(1)) await c.start({ name, seeds: [names[0]], membership: defaults, logLevel: 'info' })
    const spawned = performance.now()
    // First answer from the first node: how long a node takes to come up.
    const first = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node(names[0]).address, timeoutMs: 500 }), { intervalMs: 5, what: 'n1 to answer' })
    const upMs = performance.now() - t0
    const clients = [first, ...await Promise.all(names.slice(1).map(async (n) => await c.client(n)))]
    await waitFor(async () => {
      const views = await Promise.all(clients.map(async (cl) => await cl.nodes()))
      return views.every((v) => v.length === size && v.every((r) => r.status === 'alive'))
    }, { intervalMs: 10, timeoutMs: 60_000, what: 'all nodes to agree' })
    const agreeMs = performance.now() - t0
    row('first node up (spawn to first operator answer)', `${upMs.toFixed(0)} ms`)
    row(`spawning all ${size} processes`, `${(spawned - t0).toFixed(0)} ms`)
    row('start to every node agreeing on the member table', `${agreeMs.toFixed(0)} ms`)
    // Idle: a few gossip rounds with nothing else going on, before any load grows the heaps.
    const formed = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const justFormed = await nodesMemory(c, names)
    const idleCpu = await nodesIdleCpu(c, names, 10_000)
    // Idle: what a node holds once V8 has given back the garbage of its start (its memory
    // reducer runs some seconds after allocation slows down), which is what a node holds
    // for the hours it idles.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, formed + IDLE_AFTER_MS - performance.now())))
    const idle = await nodesMemory(c, names)

    const rpc = await rpcFigures(c, names[0], first)
    for (const cl of clients) cl.close()
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const loaded = await nodesMemory(c, names)
    row(`idle RSS per node, ${IDLE_AFTER_MS / 1000} s after forming (mean / max)`, `${idle.rssMean.toFixed(1)} / ${idle.rssMax.toFixed(1)} MiB`, `(floor ${rpc.idle.rss.toFixed(0)} MiB idle Node process, ${rpc.echo.rss.toFixed(0)} MiB the echo server; goal ≤ 60 MiB)`)
    row('  of which private (anonymous pages), mean', `${idle.privateMean.toFixed(1)} MiB`, `(floor ${rpc.idle.private.toFixed(1)} / ${rpc.echo.private.toFixed(1)} MiB; the rest: the Node executable's pages, shared by all its processes)`)
    row('  3 s after forming (mean / max)', `${justFormed.rssMean.toFixed(1)} / ${justFormed.rssMax.toFixed(1)} MiB`, `(private ${justFormed.privateMean.toFixed(1)} MiB: the start's garbage not yet given back)`)
    row('idle CPU per node (mean / max, 10 s)', `${idleCpu.mean.toFixed(1)} / ${idleCpu.max.toFixed(1)} ms/s`, `(3-13 s after forming; gossip every ${defaults.gossipIntervalMs} ms: each node probes one member a period and is probed by one on average, each acked; up to ${defaults.fanout} more pings only while it has news, none here once formed)`)
    row('RSS per node 3 s after the RPC load (mean / max)', `${loaded.rssMean.toFixed(0)} / ${loaded.rssMax.toFixed(0)} MiB`, `(private ${loaded.privateMean.toFixed(1)} MiB: the heap the load grew, not yet given back)`)
  } finally {
    await c.cleanup()
  }
}

/** When a formed cluster's nodes count as idle (see the idle RSS row). */
const IDLE_AFTER_MS = 30_000

const ROUND_TRIPS = 3000
const WARMUP = 500
const INFLIGHT = 64
const TOTAL = 40_000
/** Throughput runs of the floor and the RPC path take turns, in this many runs each, so both meet the same load from whatever else runs on the machine. */
const BLOCKS = 4

/** Round trips per turn: short enough that both sides meet the same bursts of load from elsewhere. */
const TURN = 100
/** Unmeasured calls at the start of each turn: the first call wakes a process that slept through the other's turn. */
const TURN_WARMUP = 3

/** Round trips (µs) of `a` and `b` in turns of TURN calls each, `n` of each measured, after `warmup` unmeasured ones. */
async function roundTrips (a: () => Promise<unknown>, b: () => Promise<unknown>, n: number, warmup: number): Promise<[number[], number[]]> {
  const samples: [number[], number[]] = [[], []]
  for (const call of [a, b]) for (let i = 0; i < warmup; i++) await call()
  while (samples[1].length < n) {
    for (const [k, call] of [a, b].entries()) {
      for (let i = 0; i < TURN_WARMUP + TURN; i++) {
        const s = performance.now()
        await call()
        if (i >= TURN_WARMUP) samples[k].push((performance.now() - s) * 1000)
      }
    }
  }
  return samples
}

/**
 * The RPC path against its floor, in turns: latency of one call at a time (TURN calls of
 * each in turn), then throughput with INFLIGHT calls pipelined on one connection (runs in turn), both sides asking cluster.ping (no
 * payload; answer `{ node, at }`). The RPC path is measured with the transport's own client
 * (connectTo, as the raw client is the floor's); the REPL client's `cluster.call` is shown
 * apart, as what an operator's session adds.
 */
async function rpcFigures (c: TestCluster, name: string, repl: Cluster) {
  const id = await loadIdentity({ keys: c.keys, as: 'op' })
  const conn: Connection = await connectTo(c.node(name).address, { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster })
  const floor = await startFloor()
  try {
    const nodePid = c.node(name).proc.pid ?? 0
    // No async wrapper on either side: each call is the client's own promise.
    const ping = (): Promise<unknown> => call(conn, operator, 'cluster.ping')
    const [rpcRtt, floorRtt] = await roundTrips(ping, floor.call, ROUND_TRIPS, WARMUP)
    const rpcTp: Array<Awaited<ReturnType<typeof throughput>>> = []
    const floorTp: Array<Awaited<ReturnType<typeof throughput>>> = []
    for (let b = 0; b < BLOCKS; b++) {
      floorTp.push(await throughput(floor.call, floor.pid, { inflight: INFLIGHT, total: TOTAL / BLOCKS }))
      rpcTp.push(await throughput(ping, nodePid, { inflight: INFLIGHT, total: TOTAL / BLOCKS }))
    }
    const replCall = (): Promise<unknown> => repl.call('cluster.ping')
    await throughput(replCall, nodePid, { inflight: INFLIGHT, total: WARMUP * 4 }) // its own code path warms up too
    const replTp = await throughput(replCall, nodePid, { inflight: INFLIGHT, total: TOTAL / BLOCKS })
    const rtt = summarize(rpcRtt)
    const f = summarize(floorRtt)
    const tp = combined(rpcTp)
    const ftp = combined(floorTp)
    row('RPC round trip over mTLS (operator, cluster.ping), p50', `${rtt.p50.toFixed(0)} µs`, `${ratio(Math.round(rtt.p50), Math.round(f.p50))} raw wss+msgpackr echo, goal ≤ 1.3x`)
    row('  p10 / p90 (RPC; floor)', `${pct(rpcRtt, 10)} / ${pct(rpcRtt, 90)} µs`, `(${pct(floorRtt, 10)} / ${pct(floorRtt, 90)} µs; on a VM a wake from idle can add ~60 µs to a round trip, so p50 can fall on either side)`)
    row('RPC round trip over mTLS, p99', `${rtt.p99.toFixed(0)} µs`, `${ratio(Math.round(rtt.p99), Math.round(f.p99))} goal ≤ 3x`)
    row(`throughput, one connection, ${INFLIGHT} in flight`, `${Math.round(tp.perSec)} msg/s`, `(floor ${Math.round(ftp.perSec)} msg/s; ${(100 * tp.perSec / ftp.perSec).toFixed(0)}%, goal ≥ 70%)`)
    row('  CPU per call: node / RPC client', `${tp.serverCpuUs.toFixed(1)} / ${tp.clientCpuUs.toFixed(1)} µs`, `(floor: echo server ${ftp.serverCpuUs.toFixed(1)} / raw client ${ftp.clientCpuUs.toFixed(1)} µs)`)
    row('  through the REPL client (cluster.call)', `${Math.round(replTp.perSec)} msg/s`, `(client CPU ${replTp.clientCpuUs.toFixed(1)} µs per call)`)
    return { echo: await memoryMiB(floor.pid), idle: await idleNodeMemory() }
  } finally {
    floor.close()
    conn.close()
  }
}

/** Throughput runs taken together: calls over time, CPU per call. */
function combined (runs: Array<{ perSec: number, serverCpuUs: number, clientCpuUs: number }>): { perSec: number, serverCpuUs: number, clientCpuUs: number } {
  const n = runs.length
  const seconds = runs.reduce((a, r) => a + 1 / r.perSec, 0)
  return { perSec: n / seconds, serverCpuUs: runs.reduce((a, r) => a + r.serverCpuUs, 0) / n, clientCpuUs: runs.reduce((a, r) => a + r.clientCpuUs, 0) / n }
}

/** The `p`th percentile of `samples`, rounded (µs). */
function pct (samples: number[], p: number): number {
  return Math.round(percentile([...samples].sort((a, b) => a - b), p))
}
