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

export interface Floor {
  p50: number
  p99: number
  perSec: number
  /** CPU time per call in the throughput run, µs: the server process's, and this (client) process's. */
  serverCpuUs: number
  clientCpuUs: number
  echoRssMiB: number
  idleRssMiB: number
  echoPrivateMiB: number
  idlePrivateMiB: number
}

/** CPU time (user + system) a process has used so far, in ms (clock ticks of 10 ms). */
export async function cpuMs (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/**
 * Throughput with `inflight` calls at once, and the CPU each call cost both ends. On a
 * machine shared with other work, wall-clock rates follow the others' load; CPU per call
 * follows the code.
 */
export async function throughput (call: () => Promise<unknown>, serverPid: number, o: { inflight: number, total: number }): Promise<{ perSec: number, serverCpuUs: number, clientCpuUs: number }> {
  let sent = 0
  const server0 = await cpuMs(serverPid)
  const client0 = process.cpuUsage()
  const ts = performance.now()
  await Promise.all(Array.from({ length: o.inflight }, async () => { while (sent++ < o.total) await call() }))
  const perSec = o.total / ((performance.now() - ts) / 1000)
  const client = process.cpuUsage(client0)
  const serverCpuUs = (await cpuMs(serverPid) - server0) * 1000 / o.total
  return { perSec, serverCpuUs, clientCpuUs: (client.user + client.system) / o.total }
}

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
    const tp = await throughput(call, echo.pid ?? 0, o)
    const echoMem = await memoryMiB(echo.pid ?? 0)
    ws.close()
    const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(idle)
    await once(idle.stdout as NodeJS.ReadableStream, 'data')
    const idleMem = await memoryMiB(idle.pid ?? 0)
    return { p50: rtt.p50, p99: rtt.p99, ...tp, echoRssMiB: echoMem.rss, idleRssMiB: idleMem.rss, echoPrivateMiB: echoMem.private, idlePrivateMiB: idleMem.private }
  } finally {
    for (const c of children) c.kill('SIGKILL')
  }
}
