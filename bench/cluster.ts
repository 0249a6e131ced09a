/**
 * Cluster benchmarks: formation time, RPC round trip over mutual TLS, idle RSS per node,
 * for real node processes on loopback with the default membership timings.
 */
import { readFile } from 'node:fs/promises'
import { TestCluster } from '../test/helpers/cluster'
import { waitFor } from '../test/helpers/wait'
import { connectCluster } from '../repl/client'
import { measureFloor } from './floor'
import { ratio, row, summarize } from './stats'

const defaults = { gossipIntervalMs: 200, suspectAfterMs: 2500, deadAfterMs: 5000, seedRetryMs: 2000 }

/** RSS, and its private part (RssAnon): the rest is the node executable's pages, shared by every Node process. */
async function rssMiB (pid: number): Promise<{ rss: number, anon: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 }
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

    const ts = performance.now()
    let sent = 0
    await Promise.all(Array.from({ length: inflight }, async () => { while (sent++ < total) await first.call('cluster.ping') }))
    const perSec = total / ((performance.now() - ts) / 1000)
    row(`throughput, one connection, ${inflight} in flight`, `${Math.round(perSec)} msg/s`, `(floor ${Math.round(floor.perSec)} msg/s; ${(100 * perSec / floor.perSec).toFixed(0)}%, goal ≥ 70%)`)

    for (const cl of clients) cl.close()
    // Idle: a few gossip rounds with nothing else going on.
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const rss = await Promise.all(names.map(async (n) => await rssMiB(c.node(n).proc.pid)))
    const r = summarize(rss.map((x) => x.rss))
    const anon = summarize(rss.map((x) => x.anon))
    row('idle RSS per node (mean / max)', `${r.mean.toFixed(0)} / ${Math.max(...rss.map((x) => x.rss)).toFixed(0)} MiB`, `(floor ${floor.idleRssMiB.toFixed(0)} MiB idle Node process, ${floor.echoRssMiB.toFixed(0)} MiB the echo server; goal ≤ 60 MiB)`)
    row('  of which private (RssAnon), mean', `${anon.mean.toFixed(0)} MiB`, '(the rest: the Node executable\'s pages, shared by all its processes)')
  } finally {
    await c.cleanup()
  }
}
