/**
 * Proxy benchmarks: a small HTTP request (GET, 2-byte answer) to one instance, direct vs
 * through the same node's published port vs through another node's (the mutual-TLS stream
 * between nodes), all in one run so the direct path is the floor. Latency on one
 * keep-alive connection, throughput with 16 connections, and the time to open a new
 * connection and get a first answer. Three real node processes on loopback; the published
 * port is in TCP mode (bytes forwarded, no HTTP parsing by the node).
 */
import { defaultConfig } from '../node/config'
import http from 'node:http'
import net from 'node:net'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { TestCluster } from '../test/helpers/cluster'
import { waitFor } from '../test/helpers/wait'
import { connectCluster } from '../repl/client'
import { row, summarize } from './stats'

const procs = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs')
// The production defaults (node/config), as a user's image.json would leave them.
const defaults: Record<string, number> = defaultConfig().membership
const hostOf = (address: string): string => address.slice(0, address.lastIndexOf(':'))

async function freePort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

async function get (agent: http.Agent | false, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    http.get({ host, port, path: '/', agent }, (res) => {
      res.resume()
      res.on('end', () => res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode ?? 0}`)))
    }).on('error', reject)
  })
}

interface Path { label: string, host: string, port: number }

async function measure (p: Path): Promise<{ p50: number, p99: number, perSec: number, newP50: number, newP99: number }> {
  const one = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const lat: number[] = []
  for (let i = 0; i < 3000; i++) {
    const t0 = performance.now()
    await get(one, p.host, p.port)
    if (i >= 500) lat.push((performance.now() - t0) * 1000)
  }
  one.destroy()
  const conns = 16
  const many = new http.Agent({ keepAlive: true, maxSockets: conns })
  const total = 20_000
  let sent = 0
  const ts = performance.now()
  await Promise.all(Array.from({ length: conns }, async () => { while (sent++ < total) await get(many, p.host, p.port) }))
  const perSec = total / ((performance.now() - ts) / 1000)
  many.destroy()
  const fresh: number[] = []
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now()
    await get(false, p.host, p.port)
    if (i >= 50) fresh.push((performance.now() - t0) * 1000)
  }
  const l = summarize(lat)
  const n = summarize(fresh)
  return { p50: l.p50, p99: l.p99, perSec, newP50: n.p50, newP99: n.p99 }
}

export async function benchProxy (): Promise<void> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-bench-spec-'))
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    await mkdir(join(dir, 'services'))
    const port = await freePort()
    await writeFile(join(dir, 'cluster.json'), JSON.stringify({ name: 'bench', minNodes: 1 }))
    await writeFile(join(dir, 'services', 'echo.json'), JSON.stringify({
      run: { command: 'node', args: [join(procs, 'http-ok.js')] }, placement: { kind: 'singleton' },
      publish: { port, on: 'every' }, health: { http: { path: '/health' }, intervalMs: 100 }, stopGraceMs: 1000
    }))
    for (const n of ['n1', 'n2', 'n3']) await c.start({ name: n, membership: defaults, logLevel: 'info', image: { specDir: dir } })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node('n1').address }), { what: 'n1' })
    const inst = await waitFor(async () => ((await client.services()).services.find((s) => s.name === 'echo')?.instances ?? []).find((i) => i.state === 'ready' && i.address !== undefined), { what: 'echo ready', timeoutMs: 30_000 })
    client.close()
    const home = inst.node
    const other = ['n1', 'n2', 'n3'].find((n) => n !== home)!
    const direct: Path = { label: 'direct', host: hostOf(inst.address!), port: Number(inst.address!.slice(inst.address!.lastIndexOf(':') + 1)) }
    const same: Path = { label: 'same-node proxy', host: hostOf(c.node(home).address), port }
    const cross: Path = { label: 'cross-node proxy', host: hostOf(c.node(other).address), port }
    // Every published port answers (the member tables agree on the ready instance).
    for (const p of [same, cross]) await waitFor(async () => { await get(false, p.host, p.port); return true }, { what: `${p.label} to answer`, timeoutMs: 30_000 })
    console.log(`\nproxy: small HTTP GET to one instance on ${home} (3 nodes; published port in TCP mode; cross-node from ${other} over mTLS)`)
    // Warm every path (JIT in the client, the instance and the nodes) before any is measured.
    const warm = new http.Agent({ keepAlive: true, maxSockets: 4 })
    for (let i = 0; i < 2000; i++) for (const p of [direct, same, cross]) await get(i % 4 === 0 ? false : warm, p.host, p.port)
    warm.destroy()
    const results = []
    for (const p of [direct, same, cross]) results.push({ p, r: await measure(p) })
    const floor = results[0].r
    const x = (v: number, f: number): string => `(${(v / f).toFixed(1)}x direct)`
    for (const { p, r } of results) {
      const isFloor = p === direct
      row(`${p.label}: p50, one keep-alive conn`, `${r.p50.toFixed(0)} µs`, isFloor ? '(floor)' : x(r.p50, floor.p50))
      row(`${p.label}: p99, one keep-alive conn`, `${r.p99.toFixed(0)} µs`, isFloor ? '(floor)' : x(r.p99, floor.p99))
      row(`${p.label}: throughput, 16 conns`, `${Math.round(r.perSec)} req/s`, isFloor ? '(floor)' : `(${(r.perSec / floor.perSec).toFixed(2)}x direct)`)
      row(`${p.label}: new conn + first answer, p50`, `${r.newP50.toFixed(0)} µs`, isFloor ? '(floor)' : x(r.newP50, floor.newP50))
      row(`${p.label}: new conn + first answer, p99`, `${r.newP99.toFixed(0)} µs`, isFloor ? '(floor)' : x(r.newP99, floor.newP99))
    }
  } finally {
    await c.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}
