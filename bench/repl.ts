/**
 * REPL benchmarks: `cluster.stats()` round trip at 3 and 10 nodes, evaluation on one node
 * and on each of 3, and an `origin repl -e` from process start to exit (the REPL's start,
 * one answer, and its exit). Real node processes on loopback; the spec comes from a
 * directory and names the bench operator as allowed to evaluate.
 */
import { defaultConfig } from '../node/config'
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { cliPath } from '../node/launch'
import { connectCluster, type Cluster } from '../repl/client'
import { TestCluster } from '../test/helpers/cluster'
import { waitFor } from '../test/helpers/wait'
import { row, summarize } from './stats'

// The production defaults (node/config), as a user's image.json would leave them.
const defaults: Record<string, number> = defaultConfig().membership

async function timed (n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    out.push(performance.now() - t0)
  }
  return out
}

const ms = (samples: number[]): string => { const s = summarize(samples); return `${s.p50.toFixed(1)} / ${s.p99.toFixed(1)} ms` }

async function withCluster (size: number, fn: (c: TestCluster, client: Cluster) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-bench-repl-'))
  await mkdir(join(dir, 'services'))
  await writeFile(join(dir, 'cluster.json'), JSON.stringify({ name: 'bench', minNodes: 1, operators: { eval: ['op'] } }))
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    const names = Array.from({ length: size }, (_, i) => `n${i + 1}`)
    for (const name of names) await c.start({ name, membership: defaults, logLevel: 'info', image: { specDir: dir } })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node('n1').address, timeoutMs: 1000 }), { what: 'n1' })
    await waitFor(async () => (await client.nodes()).filter((r) => r.status === 'alive').length === size, { timeoutMs: 60_000, what: 'all alive' })
    await waitFor(async () => (await client.spec()).nodes.every((n) => n.spec !== undefined), { what: 'the spec everywhere' })
    await fn(c, client)
    client.close()
  } finally {
    await c.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
}

async function replStartToExit (c: TestCluster): Promise<number[]> {
  return await timed(5, async () => await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, 'repl', '--keys', c.keys, '--as', 'op', '--connect', c.node('n1').address, '-e', '1'], { stdio: 'ignore' })
    child.once('error', reject)
    child.once('exit', (code) => { code === 0 ? resolve() : reject(new Error(`origin repl -e exited ${code ?? '?'}`)) })
  }))
}

export async function benchRepl (): Promise<void> {
  console.log('\nrepl')
  for (const size of [3, 10]) {
    await withCluster(size, async (_c, client) => {
      await client.stats() // the first call measures its own window
      row(`cluster.stats() round trip, ${size} nodes, p50 / p99`, ms(await timed(20, async () => await client.stats())))
    })
  }
  await withCluster(3, async (c, client) => {
    await client.on('n2').eval('1') // the first evaluation on a node loads the transpiler
    await client.each('1')
    row('eval on one node (relayed), p50 / p99', ms(await timed(30, async () => await client.on('n2').eval('Object.keys(node.members).length'))))
    row('eval on each of 3 nodes, p50 / p99', ms(await timed(30, async () => await client.each('node.id'))))
    row('origin repl -e: process start to exit, p50 / p99', ms(await replStartToExit(c)))
  })
}
