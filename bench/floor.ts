/**
 * The floors of bench/cluster.ts, measured on this machine in the same run: a raw
 * websocket + msgpackr echo over mutual TLS 1.3 (bench/floor-echo.ts, its own process, the
 * same key sizes as a cluster's), driven with the same round trips and throughput as the
 * RPC path (bench/cluster.ts interleaves the two), and the RSS of that echo server and of
 * an idle Node process.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Packr } from 'msgpackr'
import WebSocket from 'ws'
import { createCa, issueCertificate } from '../node/keys'

/**
 * CPU time a process has used so far, in ms, every thread counted (GC helpers, libuv's
 * pool): /proc/<pid>/task/<tid>/schedstat, in nanoseconds. /proc/<pid>/stat counts clock
 * ticks of 10 ms, too coarse for the ~100 ms a throughput run costs.
 */
export async function cpuMs (pid: number): Promise<number> {
  const tasks = await readdir(`/proc/${pid}/task`)
  const ns = await Promise.all(tasks.map(async (tid) => {
    // A thread may end between the listing and the read.
    try { return Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')).split(' ')[0]) } catch { return 0 }
  }))
  return ns.reduce((a, b) => a + b, 0) / 1e6
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

/** The echo server, running, and a raw client connected to it. */
export interface EchoFloor {
  /** One round trip: a request frame out, the answer frame back. */
  call (): Promise<void>
  readonly pid: number
  close (): void
}

/**
 * Starts the echo server (bench/floor-echo.ts) in its own process and connects a raw
 * websocket client to it: no frame checks, no method table, no deadlines, no corking. What
 * it answers has the node's shape for cluster.ping (`{ node, at }`), so both sides encode
 * and decode the same frames as the RPC path does.
 */
export async function startFloor (): Promise<EchoFloor> {
  const ca = createCa('floor')
  const server = issueCertificate({ ca, role: 'node', cluster: 'floor', name: 'echo' })
  const client = issueCertificate({ ca, role: 'node', cluster: 'floor', name: 'client' })
  const echo = spawn(process.execPath, [join(__dirname, 'floor-echo.js')], { env: { ...process.env, FLOOR_CA: ca.certPem, FLOOR_CERT: server.certPem, FLOOR_KEY: server.keyPem }, stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const [line] = await once(echo.stdout as NodeJS.ReadableStream, 'data') as [Buffer]
    const port = Number(line.toString().trim())
    const ws = new WebSocket(`wss://127.0.0.1:${port}`, { ca: ca.certPem, cert: client.certPem, key: client.keyPem, rejectUnauthorized: false })
    await once(ws, 'open')
    const waiting = new Map<number, () => void>()
    ws.on('message', (data: Buffer) => { const f = packr.unpack(data) as { id: number }; waiting.get(f.id)?.(); waiting.delete(f.id) })
    let next = 1
    return {
      pid: echo.pid ?? 0,
      call: () => new Promise<void>((resolve) => {
        const id = next++
        waiting.set(id, resolve)
        ws.send(packr.pack({ t: 'req', id, m: 'cluster.ping' }))
      }),
      close: () => { ws.close(); echo.kill('SIGKILL') }
    }
  } catch (err) {
    echo.kill('SIGKILL')
    throw err
  }
}

/** RSS of an idle Node process (what any node costs before it does anything). */
export async function idleNodeMemory (): Promise<{ rss: number, private: number }> {
  const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    await once(idle.stdout as NodeJS.ReadableStream, 'data')
    return await memoryMiB(idle.pid ?? 0)
  } finally {
    idle.kill('SIGKILL')
  }
}
