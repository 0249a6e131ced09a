/**
 * What a peer can make a node spend, on real node processes: frames that decode into
 * millions of objects, errors about huge payloads, connections that never authenticate,
 * floods of refused handshakes. Each is bounded, and the node goes on serving.
 */
import test from 'ava'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import tls from 'node:tls'
import { join } from 'node:path'
import WebSocket from 'ws'
import { OriginError } from '../node/errors'
import { issueCertificate, loadIdentity } from '../node/keys'
import { connectTo, transportDefaults, type Connection } from '../node/transport'
import { decodeFrame, encodeFrame, type Frame } from '../node/transport/frames'
import { TestCluster, type TestNode } from './helpers/cluster'
import { waitFor } from './helpers/wait'

type Wire = { ca: string, cert: string, key: string, cluster: string }

let c: TestCluster
let n1: TestNode
let asNode: Wire
let asOperator: Wire

test.before(async () => {
  c = await TestCluster.create()
  n1 = await c.start({ name: 'n1', logLevel: 'info' })
  await c.start({ name: 'n2', logLevel: 'info' })
  await c.waitForView({ n1: 'alive', n2: 'alive' })
  const wire = async (as?: string): Promise<Wire> => {
    const id = await loadIdentity({ keys: c.keys, as })
    return { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
  }
  asNode = await wire()
  asOperator = await wire('op')
})
test.after.always(async () => { await c?.cleanup() })

// ---- what the node process uses, from /proc ----

async function fds (pid: number): Promise<number> { return (await readdir(`/proc/${pid}/fd`)).length }

async function status (pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? NaN) / 1024
}

/** Peak RSS (MB) since the last reset; resets it when the kernel allows. */
async function resetPeak (pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => undefined)
}

/** Pings n1 as an operator until stopped, and says how long the slowest answer took (Infinity: a ping failed). */
function pinger (conn: Connection): { stop: () => Promise<{ n: number, maxMs: number }> } {
  let running = true
  let maxMs = 0
  let n = 0
  const loop = (async () => {
    while (running) {
      const started = Date.now()
      const ok = await conn.call('cluster.ping', undefined, { timeoutMs: 30_000 }).then(() => true, () => false)
      maxMs = ok ? Math.max(maxMs, Date.now() - started) : Infinity
      if (!ok) return
      n++
    }
  })()
  return { stop: async () => { running = false; await loop; return { n, maxMs } } }
}

/** A websocket with `id`'s certificate, to send bytes an RpcConnection never would. */
async function rawSocket (id: Wire): Promise<{ ws: WebSocket, frames: Frame[], closed: Promise<number> }> {
  const ws = new WebSocket(`wss://${n1.address}/origin/v1`, { ca: id.ca, cert: id.cert, key: id.key, checkServerIdentity: () => undefined } as unknown as WebSocket.ClientOptions)
  const frames: Frame[] = []
  ws.on('message', (data) => frames.push(decodeFrame(data as Buffer, 1 << 20)))
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  return { ws, frames, closed }
}

/** A valid req frame whose payload is `n` empty maps: n values in n + 5 bytes. */
function emptyMapsRequest (method: string, n: number): Buffer {
  const head = encodeFrame({ t: 'req', id: 7, m: method, p: null }).subarray(0, -1)
  const array = Buffer.alloc(5 + n, 0x80)
  array[0] = 0xdd
  array.writeUInt32BE(n, 1)
  return Buffer.concat([head, array])
}

/** A loopback source address of its own for each attacker (127/8 is all loopback on Linux). */
const attacker = (i: number): string => `127.250.${Math.floor(i / 250) + 1}.${(i % 250) + 1}`

test.serial('limits: 4 MiB frames of empty maps to supervisor.report and cluster.nodes are refused before decoding; the node stays small and responsive', async (t) => {
  const pid = n1.proc.pid
  const op = await connectTo(n1.address, asOperator)
  t.teardown(() => { op.close() })
  const ping = pinger(op)
  await resetPeak(pid)
  const rssBefore = await status(pid, 'VmRSS')
  const started = Date.now()
  for (let i = 0; i < 10; i++) {
    // Each decoded to 4.2 M objects: 0.6-0.95 s of event loop and ~270 MB.
    const [id, method] = i % 2 === 0 ? [asNode, 'supervisor.report'] : [asOperator, 'cluster.nodes']
    const s = await rawSocket(id)
    s.ws.send(emptyMapsRequest(method, transportDefaults.maxFrameBytes - 64))
    t.is(await s.closed, 1002, method)
    t.like(s.frames[0], { t: 'err', id: 0, e: { code: 'E_FRAME_TOO_LARGE', message: `frame holds more than ${transportDefaults.maxFrameElements} values` } }, method)
  }
  const floodMs = Date.now() - started
  // Under the element limit the frame decodes, and a method without a payload refuses it.
  const s = await rawSocket(asNode)
  s.ws.send(emptyMapsRequest('supervisor.report', 400_000))
  await waitFor(() => s.frames.length === 1, { what: 'the answer to a payload under the limit' })
  t.like(s.frames[0], { t: 'err', id: 7, e: { code: 'E_PAYLOAD_INVALID', message: 'supervisor.report takes no payload, and this call sent an array' } })
  s.ws.send(encodeFrame({ t: 'req', id: 8, m: 'supervisor.report' }))
  await waitFor(() => s.frames.length === 2, { what: 'a normal call on the same connection' })
  t.like(s.frames[1], { t: 'res', id: 8 })
  s.ws.close()
  const { n, maxMs } = await ping.stop()
  const peakGrowth = await status(pid, 'VmHWM') - rssBefore
  t.log(`10 frames refused in ${floodMs} ms; peak RSS +${peakGrowth.toFixed(0)} MB; ${n} pings meanwhile, slowest ${maxMs} ms`)
  t.true(peakGrowth < 150, `peak RSS grew ${peakGrowth.toFixed(0)} MB`) // it reached 1.27 GB
  t.true(maxMs < 1500, `slowest ping ${maxMs} ms`)
  await c.waitForView({ n1: 'alive', n2: 'alive' })
})

test.serial('limits: an invalid gossip of 9,000 members is answered with a small error', async (t) => {
  const conn = await connectTo(n1.address, asNode)
  t.teardown(() => { conn.close() })
  const table: Record<string, unknown> = {}
  for (let i = 0; i < 9000; i++) table[`m${i}`] = { id: `M${i}`, address: 'x', incarnation: -1, heartbeat: 0, status: 'zombie', hub: 1, characteristics: {} }
  const err = await t.throwsAsync(conn.call('mesh.gossip', { from: 'x', table }, { timeoutMs: 30_000 }))
  t.true(err instanceof OriginError, String(err))
  const size = encodeFrame({ t: 'err', id: 1, e: (err as OriginError).toJSON() }).length
  t.log(`${(err as OriginError).code}, error frame of ${size} bytes: ${err.message.slice(0, 160)}`)
  t.true(size <= 20_000, `error frame of ${size} bytes`) // it was 18 MB
  t.true(conn.isOpen)
})

test.serial('limits: 4,000 idle unauthenticated TLS connections are capped and closed after the handshake timeout; a node and an operator connect meanwhile', async (t) => {
  const pid = n1.proc.pid
  const [host, port] = [n1.address.split(':')[0], Number(n1.address.split(':')[1])]
  const fdsBefore = await fds(pid)
  let fdsPeak = fdsBefore
  let sampling = true
  const sampler = (async () => { while (sampling) { fdsPeak = Math.max(fdsPeak, await fds(pid).catch(() => 0)); await new Promise((resolve) => setImmediate(resolve)) } })()
  const held: Array<{ openedAt: number, closedAt?: number, socket?: tls.TLSSocket }> = []
  const openNow = (): number => held.filter((h) => h.closedAt === undefined).length
  t.teardown(() => { for (const h of held) h.socket?.destroy() })
  const one = async (from: string): Promise<void> => {
    const h: (typeof held)[number] = { openedAt: Date.now() }
    held.push(h)
    await new Promise<void>((resolve) => {
      // No client certificate: the TLS handshake succeeds, then nothing is sent.
      h.socket = tls.connect({ host, port, localAddress: from, ca: asNode.ca, checkServerIdentity: () => undefined } as tls.ConnectionOptions, () => resolve())
      h.socket.on('error', () => resolve())
      h.socket.on('close', () => { h.closedAt ??= Date.now(); resolve() })
      h.socket.resume()
    })
  }
  // Two waves from 40 addresses; a node joins and an operator connects in between.
  for (let i = 0; i < 2000; i += 200) await Promise.all(Array.from({ length: 200 }, async (_, k) => await one(attacker((i + k) % 40))))
  const duringAttack = openNow()
  const n3 = await c.start({ name: 'n3', logLevel: 'info' })
  const op = await connectTo(n1.address, asOperator, { connectTimeoutMs: 3000 })
  t.like(await op.call('cluster.ping'), { node: 'n1' }, 'an operator got in')
  op.close()
  for (let i = 2000; i < 4000; i += 200) await Promise.all(Array.from({ length: 200 }, async (_, k) => await one(attacker((i + k) % 40))))
  await c.waitForView({ n3: 'alive' }, { on: ['n1'] })
  t.log(`${duringAttack} attacker connections open when n3 started and the operator connected`)
  t.true(duringAttack > 100, 'the attack was going on')

  await waitFor(() => openNow() === 0, { timeoutMs: 30_000, what: 'every attacker connection to be closed' })
  const longest = Math.max(...held.map((h) => (h.closedAt ?? Infinity) - h.openedAt))
  sampling = false
  await sampler
  await waitFor(async () => await fds(pid) <= fdsBefore + 20, { what: `n1's file descriptors to come back near ${fdsBefore}` })
  const fdsAfter = await fds(pid)
  t.log(`n1 fds: ${fdsBefore} before, peak ${fdsPeak}, ${fdsAfter} after; longest-held attacker connection ${longest} ms`)
  t.true(fdsPeak <= fdsBefore + transportDefaults.maxUnauthenticated + 64, `peak of ${fdsPeak} file descriptors`) // it was 4,028
  t.true(longest <= transportDefaults.handshakeTimeoutMs + 4000, `an attacker connection was held ${longest} ms`) // 60-80 s
  await n3.proc.stop()
})

test.serial('limits: 5,000 refused handshakes write a bounded number of log lines', async (t) => {
  const logStart = (await n1.log()).length
  const ca = { certPem: await readFile(join(c.keys, 'ca.crt'), 'utf8'), keyPem: await readFile(join(c.keys, 'ca.key'), 'utf8') }
  const old = issueCertificate({ ca, role: 'operator', cluster: 'test', name: 'old', notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) })
  const refuse = async (i: number): Promise<string> => await new Promise<string>((resolve) => {
    const cert = i % 500 === 0 ? { cert: old.certPem, key: old.keyPem } : {}
    const ws = new WebSocket(`wss://${n1.address}/origin/v1`, { ca: asNode.ca, ...cert, localAddress: attacker(i % 50), checkServerIdentity: () => undefined } as unknown as WebSocket.ClientOptions)
    ws.once('open', () => { ws.terminate(); resolve('open') })
    ws.once('unexpected-response', (_req, res) => { res.resume(); res.on('end', () => resolve(String(res.statusCode))) })
    ws.once('error', (e) => resolve(e.message))
  })
  const started = Date.now()
  const outcomes = new Map<string, number>()
  for (let i = 0; i < 5000; i += 25) {
    for (const o of await Promise.all(Array.from({ length: 25 }, async (_, k) => await refuse(i + k)))) outcomes.set(o, (outcomes.get(o) ?? 0) + 1)
  }
  t.log(`5,000 handshakes in ${Date.now() - started} ms: ${JSON.stringify(Object.fromEntries(outcomes))}`)
  t.is(outcomes.get('403'), 5000, 'each was refused with a reason')
  // Every one of them is accounted for: in full, or counted in a summary.
  const refusalLines = async (): Promise<string[]> => (await n1.log()).slice(logStart).split('\n').filter((l) => / refused (a|\d[\d,]*) /.test(l))
  const counted = (l: string, kind: string): number => Number(new RegExp(`([\\d,]+) ${kind}`).exec(l)?.[1].replace(/,/g, '') ?? 0)
  const accounted = (lines: string[]): number => lines.reduce((n, l) => /refused [\d,]+ more/.test(l)
    ? n + counted(l, 'no certificate') + counted(l, 'expired')
    : n + (/no client certificate|certificate has expired/.test(l) ? 1 : 0), 0)
  await waitFor(async () => accounted(await refusalLines()) === 5000, { timeoutMs: 40_000, what: 'the summary of the refusals' })
  const lines = await refusalLines()
  t.log(lines.map((l) => l.replace(/^\S+ \w+ +/, '')).join('\n'))
  t.true(lines.length <= 12, `${lines.length} lines`) // it was 5,000
  t.regex(lines.join('\n'), /refused a connection from .*: no client certificate/)
  t.regex(lines.join('\n'), /refused a connection from .*: certificate "old" refused: certificate has expired/)
  t.regex(lines.join('\n'), /refused [\d,]+ more connections in the last 10 s: [\d,]+ no certificate(, [\d,]+ expired)?/)
  await c.waitForView({ n1: 'alive', n2: 'alive' }, { on: ['n1', 'n2'] })
})
