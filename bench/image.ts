/**
 * Image benchmarks: `origin build` time, the size of `origin-node`, start to first operator
 * answer for `origin-node` next to the same node run from this checkout (`node dist/...
 * node --image DIR`), and the idle RSS of each; `origin-node` also with launch's V8 flags
 * in NODE_OPTIONS, the only way a single executable takes them. Run alone:
 * `node dist/bench/image.js`.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { cliPath, launchNode, NODE_OPTIONS, type NodeProcess } from '../node/launch'
import { connectCluster } from '../repl/client'
import { freeAddress, makeKeys } from '../test/helpers/cluster'
import { waitFor } from '../test/helpers/wait'
import { row, summarize } from './stats'
import { EXECUTABLE_NOTE, rerunUnderFreshNode } from './fresh-node'

const RUNS = 5

/** Resident and anonymous (heap, stacks: what the process made, not mapped from files) memory, MiB. */
async function memoryMiB (pid: number): Promise<{ rss: number, anon: number }> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? NaN)
  return { rss: kib('Rss') / 1024, anon: kib('Anonymous') / 1024 }
}

/** Starts a node with `start`, returns ms from spawn to its first operator answer, and its RSS after 3 s idle. */
async function firstAnswer (keys: string, start: (address: string) => NodeProcess): Promise<{ ms: number, rss: number, anon: number }> {
  const address = await freeAddress()
  const t0 = performance.now()
  const proc = start(address)
  try {
    const c = await waitFor(async () => await connectCluster({ keys, as: 'op', address, timeoutMs: 500 }), { intervalMs: 5, timeoutMs: 30_000, what: 'the node to answer' })
    await c.nodes()
    const ms = performance.now() - t0
    c.close()
    await new Promise((resolve) => setTimeout(resolve, 3000))
    return { ms, ...await memoryMiB(proc.pid) }
  } finally {
    await proc.stop(3000)
  }
}

export async function benchImage (): Promise<void> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-bench-image-'))
  try {
    console.log('\nnode image (origin build, one node, default timings)')
    const keys = await makeKeys(join(dir, 'keys'), 'bench')
    await writeFile(join(dir, 'image.json'), JSON.stringify({ cluster: 'bench', log: { level: 'warn' } }))
    const image = join(dir, 'image')
    const t0 = performance.now()
    await promisify(execFile)(process.execPath, [cliPath, 'build', '--keys', keys, '--config', join(dir, 'image.json'), '--out', image])
    row('origin build (sign, bundle, blob, inject, forms)', `${((performance.now() - t0) / 1000).toFixed(1)} s`)
    row('origin-node size', `${((await stat(join(image, 'origin-node'))).size / 2 ** 20).toFixed(1)} MiB`, `(node ${process.version} itself: ${((await stat(process.execPath)).size / 2 ** 20).toFixed(1)} MiB)`)

    const exe: Array<{ ms: number, rss: number, anon: number }> = []
    const flagged: Array<{ ms: number, rss: number, anon: number }> = []
    const checkout: Array<{ ms: number, rss: number, anon: number }> = []
    for (let i = 0; i < RUNS; i++) {
      const data = join(dir, `data-${i}`)
      const env = (address: string, suffix: string): NodeJS.ProcessEnv => ({ PATH: '/usr/bin:/bin', ORIGIN_LISTEN: address, ORIGIN_DATA: `${data}-${suffix}` })
      exe.push(await firstAnswer(keys, (address) => launchNode([], { executable: join(image, 'origin-node'), inheritEnv: false, cwd: dir, env: env(address, 'exe') })))
      flagged.push(await firstAnswer(keys, (address) => launchNode([], { executable: join(image, 'origin-node'), inheritEnv: false, cwd: dir, env: { ...env(address, 'flagged'), NODE_OPTIONS } })))
      checkout.push(await firstAnswer(keys, (address) => launchNode(['--image', image, '--listen', address, '--data', `${data}-checkout`])))
    }
    const e = summarize(exe.map((r) => r.ms))
    const c = summarize(checkout.map((r) => r.ms))
    row(`start to first operator answer, origin-node (p50 of ${RUNS})`, `${e.p50.toFixed(0)} ms`)
    row(`start to first operator answer, checkout (p50 of ${RUNS})`, `${c.p50.toFixed(0)} ms`, `(node ${cliPath.replace(process.cwd() + '/', '')} node --image DIR)`)
    const f = summarize(flagged.map((r) => r.ms))
    row(`start to first operator answer, origin-node with NODE_OPTIONS=${NODE_OPTIONS} (p50 of ${RUNS})`, `${f.p50.toFixed(0)} ms`)
    const memory = (runs: Array<{ rss: number, anon: number }>): string => `${summarize(runs.map((r) => r.rss)).mean.toFixed(0)} MiB (anonymous ${summarize(runs.map((r) => r.anon)).mean.toFixed(0)})`
    row('idle RSS, origin-node (mean)', memory(exe))
    row(`idle RSS, origin-node with NODE_OPTIONS=${NODE_OPTIONS} (mean)`, memory(flagged))
    row('idle RSS, checkout (mean)', memory(checkout))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (require.main === module) rerunUnderFreshNode().then(async (ran) => { if (!ran) { console.log(EXECUTABLE_NOTE); await benchImage() } }).catch((err) => { console.error(err); process.exitCode = 1 })
