/**
 * The floors of bench/cluster.ts, measured on this machine in the same run: a raw
 * websocket + msgpackr echo over mutual TLS 1.3 (bench/floor-echo.ts, its own process, the
 * same key sizes as a cluster's), the same round trips and throughput as the operator RPC
 * path is measured with, and the RSS of that echo server and of an idle Node process.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Packr } from 'msgpackr'
import WebSocket from 'ws'
import { createCa, issueCertificate } from '../node/keys'
import { summarize } from './stats'

export interface Floor { p50: number, p99: number, perSec: number, echoRssMiB: number, idleRssMiB: number, echoPrivateMiB: number, idlePrivateMiB: number }

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })

/**
 * A process's resident memory, and the part of it that is its own: its anonymous pages
 * (heap, stacks, malloc; `Anonymous` in smaps_rollup). The rest is file pages, mostly the
 * Node executable's, shared by every Node process on the machine. Private_Clean is not
 * used: it counts executable pages that no other process happens to map at that moment.
 */
export async function memoryMiB (pid: number): Promise<{ rss: number, private: number }> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? NaN)
  return { rss: kb('Rss') / 1024, private: kb('Anonymous') / 1024 }
}

export async function measureFloor (o: { roundTrips: number, warmup: number, inflight: number, total: number }): Promise<Floor> {
  const ca = createCa('floor')
  const server = issueCertificate({ ca, role: 'node', cluster: 'floor', name: 'echo' })
  const client = issueCertificate({ ca, role: 'node', cluster: 'floor', name: 'client' })
  const children: ChildProcess[] = []
  try {
    const echo = spawn(process.execPath, [join(__dirname, 'floor-echo.js')], { env: { ...process.env, FLOOR_CA: ca.certPem, FLOOR_CERT: server.certPem, FLOOR_KEY: server.keyPem }, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(echo)
    const [line] = await once(echo.stdout as NodeJS.ReadableStream, 'data') as [Buffer]
    const port = Number(line.toString().trim())
    const ws = new WebSocket(`wss://127.0.0.1:${port}`, { ca: ca.certPem, cert: client.certPem, key: client.keyPem, rejectUnauthorized: false })
    await once(ws, 'open')
    const waiting = new Map<number, () => void>()
    ws.on('message', (data: Buffer) => { const f = packr.unpack(data) as { id: number }; waiting.get(f.id)?.(); waiting.delete(f.id) })
    let next = 1
    const call = async (): Promise<void> => await new Promise<void>((resolve) => {
      const id = next++
      waiting.set(id, resolve)
      ws.send(packr.pack({ t: 'req', id, m: 'cluster.ping' }))
    })
    const samples: number[] = []
    for (let i = 0; i < o.roundTrips; i++) {
      const s = performance.now()
      await call()
      if (i >= o.warmup) samples.push((performance.now() - s) * 1000)
    }
    const rtt = summarize(samples)
    let sent = 0
    const ts = performance.now()
    await Promise.all(Array.from({ length: o.inflight }, async () => { while (sent++ < o.total) await call() }))
    const perSec = o.total / ((performance.now() - ts) / 1000)
    const echoMem = await memoryMiB(echo.pid ?? 0)
    ws.close()
    const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(idle)
    await once(idle.stdout as NodeJS.ReadableStream, 'data')
    const idleMem = await memoryMiB(idle.pid ?? 0)
    return { p50: rtt.p50, p99: rtt.p99, perSec, echoRssMiB: echoMem.rss, idleRssMiB: idleMem.rss, echoPrivateMiB: echoMem.private, idlePrivateMiB: idleMem.private }
  } finally {
    for (const c of children) c.kill('SIGKILL')
  }
}
