/**
 * State benchmarks: for a replicated instance with a 10 MB directory, the time of one
 * snapshot round (copy + pull by one other node), and the time to restore it on a node
 * that holds no copy (ask the members, stream it over mutual TLS, rename into place).
 * Three state layers on real transports in one process; the member table is written by
 * hand (no gossip), so the figures are the state layer's and the transport's only.
 * (The same with real node processes and a kill -9 is in services.ts: `replicatedFailover`.)
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { loadIdentity } from '../node/keys'
import { silentLogger } from '../node/log'
import type { MemberTable } from '../node/membership'
import type { StateSpec } from '../node/desired/types'
import { copyHolders, state, type StateLayer } from '../node/state'
import { webSocketTransport, type Transport } from '../node/transport'
import { makeKeys } from '../test/helpers/cluster'
import { row, summarize } from './stats'

export async function benchState (o: { runs?: number, megabytes?: number } = {}): Promise<void> {
  const runs = o.runs ?? 5
  const size = (o.megabytes ?? 10) * 1024 * 1024
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-bench-state-'))
  const stops: Array<() => Promise<void>> = []
  try {
    await makeKeys(join(dir, 'keys'), 'bench')
    const id = await loadIdentity({ keys: join(dir, 'keys') })
    const identity = { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
    const table: MemberTable = {}
    const nodes: Record<string, { transport: Transport, state: StateLayer }> = {}
    for (const name of ['a', 'b', 'c']) {
      const transport = webSocketTransport({ listen: '127.0.0.1:0' })({ identity, log: silentLogger })
      await transport.start()
      table[name] = { id: name, address: transport.address, incarnation: 1, heartbeat: 1, status: 'alive', hub: false, characteristics: { cpus: 1, memoryMb: 1024, arch: os.arch(), labels: {}, startedAt: 0 } }
      const layer = state({ dataDir: join(dir, name) })({ transport, membership: { id: name, events: new EventEmitter(), table: () => table }, log: silentLogger })
      await layer.start()
      nodes[name] = { transport, state: layer }
      stops.push(async () => { await layer.stop(); await transport.stop() })
    }
    const spec: StateSpec = { mode: 'replicate', copies: 1, intervalMs: 3_600_000 }
    const snapshots: number[] = []
    const restores: number[] = []
    const transfers: number[] = []
    for (let i = 0; i < runs; i++) {
      const instance = `bench-${i}`
      const p = await nodes.a.state.prepare(instance, spec)
      await writeFile(join(p.dir, 'data.bin'), randomBytes(size))
      nodes.a.state.attach(instance, spec, { cwd: p.dir, env: {} })
      let t0 = performance.now()
      await nodes.a.state.snapshotNow(instance)
      snapshots.push(performance.now() - t0)
      await nodes.a.state.detach(instance, { graceful: false })
      // The node that holds no copy restores it, with `a` out of reach (a failover).
      const holder = copyHolders(instance, ['b', 'c'], 1)[0]
      const target = holder === 'b' ? 'c' : 'b'
      table.a = { ...table.a, status: 'dead' }
      t0 = performance.now()
      const r = await nodes[target].state.prepare(instance, spec)
      restores.push(performance.now() - t0)
      transfers.push(r.transfer?.ms ?? NaN)
      table.a = { ...table.a, status: 'alive' }
    }
    const mb = size / (1024 * 1024)
    const s = summarize(snapshots)
    const r = summarize(restores)
    const x = summarize(transfers)
    console.log(`\nstate (${mb} MB directory, replicate with 1 copy, ${runs} runs, in one process)`)
    row('snapshot + copy to 1 node, p50', `${s.p50.toFixed(0)} ms`)
    row('restore on a node without a copy (prepare), p50', `${r.p50.toFixed(0)} ms`)
    row('  of which the stream into place, p50', `${x.p50.toFixed(0)} ms`)
    row('  stream throughput, p50', `${(mb / (x.p50 / 1000)).toFixed(0)} MB/s`)
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

if (require.main === module) benchState().catch((err) => { console.error(err); process.exitCode = 1 })
