/**
 * Container benchmark: a spec change to its new instance ready, for a container service
 * (image present on the node) next to the same program as a process service. One real
 * node, its own dockerd (as the container tests start one), busybox httpd in both.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { TestCluster } from '../test/helpers/cluster'
import { busyboxPath, dockerSkipReason, importBusybox, startDockerd } from '../test/helpers/dockerd'
import { waitFor } from '../test/helpers/wait'
import { connectCluster, type Cluster } from '../repl/client'
import { row, summarize } from './stats'

const IMAGE = 'origin-bench/busybox:1'
const ROUNDS = 5

async function readyVersion (client: Cluster, name: string): Promise<string | undefined> {
  const i = (await client.services()).services.find((s) => s.name === name)?.instances.find((x) => x.state === 'ready')
  return i?.version
}

export async function benchContainers (): Promise<void> {
  console.log('\ncontainers')
  const busybox = busyboxPath
  const skip = dockerSkipReason() ?? (busybox === undefined ? 'no static busybox (busybox-static)' : undefined)
  if (skip !== undefined) { row('spec change to container ready', 'skipped', skip); return }
  const tmp = await mkdtemp(join(os.tmpdir(), 'origin-bench-containers-'))
  await chmod(tmp, 0o755)
  await mkdir(join(tmp, 'd'))
  const daemon = await startDockerd(join(tmp, 'd'))
  const c = await TestCluster.create({ cluster: 'bench' })
  try {
    if (daemon.failure !== undefined) { row('spec change to container ready', 'skipped', `dockerd did not start: ${daemon.failure}`); return }
    await importBusybox(daemon, tmp, IMAGE, { 'www/index.html': 'ok\n' })
    const www = join(tmp, 'www')
    await mkdir(www)
    await writeFile(join(www, 'index.html'), 'ok\n')
    await chmod(www, 0o755)
    const spec = join(tmp, 'spec')
    await mkdir(join(spec, 'services'), { recursive: true })
    await chmod(spec, 0o755)
    await writeFile(join(spec, 'cluster.json'), JSON.stringify({ name: 'bench', minNodes: 1 }))
    const health = { http: { path: '/index.html' }, intervalMs: 50 }
    const services = {
      process: (v: number) => ({ run: { command: busybox, args: ['httpd', '-f', '-p', '${ORIGIN_HOST}:$PORT', '-h', www], env: { V: String(v) } }, placement: { kind: 'singleton' }, health, stopGraceMs: 1000 }),
      container: (v: number) => ({ run: { image: IMAGE, args: ['httpd', '-f', '-p', '${ORIGIN_HOST}:$PORT', '-h', '/www'], env: { V: String(v) } }, placement: { kind: 'singleton' }, health, stopGraceMs: 1000 })
    }
    for (const [name, s] of Object.entries(services)) await writeFile(join(spec, 'services', `${name}.json`), JSON.stringify(s(0)))
    await c.start({ name: 'n1', logLevel: 'info', image: { specDir: spec, docker: { socket: daemon.socket } } })
    const client = await waitFor(async () => await connectCluster({ keys: c.keys, as: 'op', address: c.node('n1').address }), { what: 'n1' })
    try {
      for (const name of Object.keys(services)) await waitFor(async () => await readyVersion(client, name), { what: `${name} ready`, timeoutMs: 60_000 })
      for (const [name, s] of Object.entries(services)) {
        const times: number[] = []
        for (let v = 1; v <= ROUNDS; v++) {
          const before = await readyVersion(client, name)
          const t0 = performance.now()
          await writeFile(join(spec, 'services', `${name}.json`), JSON.stringify(s(v)))
          await waitFor(async () => { const now = await readyVersion(client, name); return now !== undefined && now !== before }, { intervalMs: 10, timeoutMs: 60_000, what: `${name} v${v} ready` })
          times.push(performance.now() - t0)
        }
        const r = summarize(times)
        row(`spec change to new ${name} ready (p50 / max of ${ROUNDS})`, `${r.p50.toFixed(0)} / ${Math.max(...times).toFixed(0)} ms`, name === 'container' ? '(image present; busybox httpd in both)' : '')
      }
    } finally { client.close() }
  } finally {
    await c.cleanup()
    await daemon.stop()
    await rm(tmp, { recursive: true, force: true })
  }
}
