/**
 * Cluster benchmarks: formation time, RPC round trip over mutual TLS, RSS per node idle
 * and after the RPC load, for real node processes on loopback with the default membership
 * timings.
 */
import { TestCluster } from '../test/helpers/cluster'
import { waitFor } from '../test/helpers/wait'
import { connectCluster } from '../repl/client'
import { measureFloor, memoryMiB, throughput } from './floor'
import { ratio, row, summarize } from './stats'
import { defaultConfig } from '../node/config'

// The production defaults (node/config), as a user's image.json would leave them.
const defaults: Record<string, number> = defaultConfig().membership

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
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const idle = await nodesMemory(c, names)

    const roundTrips = 3000
    const warmup = 500
    const inflight = 64
    const total = 20_000
    // The floor, measured now on this machine: a raw wss + msgpackr echo, the same calls.
    const floor = await measureFloor({ roundTrips, warmup, inflight, total })
    const samples: number[] = []
    for (let i = 0; i < roundTrips; i++) {
      const s = performance.now()
      await first.call('cluster.ping')
      if (i >= warmup) samples.push((performance.now() - s) * 1000)
    }
    const rtt = summarize(samples)
    row('operator RPC round trip over mTLS, p50', `${rtt.p50.toFixed(0)} µs`, `${ratio(Math.round(rtt.p50), Math.round(floor.p50))} raw wss+msgpackr echo, goal ≤ 1.3x`)
    row('operator RPC round trip over mTLS, p99', `${rtt.p99.toFixed(0)} µs`, `${ratio(Math.round(rtt.p99), Math.round(floor.p99))} goal ≤ 3x`)

    const tp = await throughput(async () => await first.call('cluster.ping'), c.node(names[0]).proc.pid, { inflight, total })
    row(`throughput, one connection, ${inflight} in flight`, `${Math.round(tp.perSec)} msg/s`, `(floor ${Math.round(floor.perSec)} msg/s; ${(100 * tp.perSec / floor.perSec).toFixed(0)}%, goal ≥ 70%)`)
    row('  CPU per call: node / operator client', `${tp.serverCpuUs.toFixed(1)} / ${tp.clientCpuUs.toFixed(1)} µs`, `(floor: echo server ${floor.serverCpuUs.toFixed(1)} / raw client ${floor.clientCpuUs.toFixed(1)} µs)`)

    for (const cl of clients) cl.close()
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const loaded = await nodesMemory(c, names)
    row('idle RSS per node (mean / max)', `${idle.rssMean.toFixed(0)} / ${idle.rssMax.toFixed(0)} MiB`, `(floor ${floor.idleRssMiB.toFixed(0)} MiB idle Node process, ${floor.echoRssMiB.toFixed(0)} MiB the echo server; goal ≤ 60 MiB)`)
    row('  of which private (anonymous pages), mean', `${idle.privateMean.toFixed(1)} MiB`, `(floor ${floor.idlePrivateMiB.toFixed(1)} / ${floor.echoPrivateMiB.toFixed(1)} MiB; the rest: the Node executable's pages, shared by all its processes)`)
    row('RSS per node 3 s after the RPC load (mean / max)', `${loaded.rssMean.toFixed(0)} / ${loaded.rssMax.toFixed(0)} MiB`, `(private ${loaded.privateMean.toFixed(1)} MiB: the heap the load grew, not yet given back)`)
  } finally {
    await c.cleanup()
  }
}
