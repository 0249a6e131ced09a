/**
 * The transport contract (node/transport/types.ts), one suite run against every
 * implementation: the websocket transport (mutual TLS on loopback) and the in-memory one
 * (plugins/transport-memory). A behaviour the other layers rely on belongs here, so a new
 * transport is done when this passes.
 */
import test, { type ExecutionContext } from 'ava'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { OriginError } from '../node/errors'
import { loadIdentity, type Identity } from '../node/keys'
import { silentLogger } from '../node/log'
import { connectTo, webSocketTransport, type CallContext, type Connection, type Method, type Transport, type TransportInit } from '../node/transport'
import type { FrameChannel } from '../node/transport/channel'
import { decodeFrame, encodeFrame, type Frame } from '../node/transport/frames'
import { memoryNetwork } from '../plugins/transport-memory'
import WebSocket from 'ws'
import { makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

type Wire = { ca: string, cert: string, key: string, cluster: string }
const wire = (id: Identity): Wire => ({ ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster })

let dir = ''
let node: Wire
let op: Wire & { serial: string }
let otherCluster: Wire
let otherCa: Wire

test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-compliance-'))
  await makeKeys(join(dir, 'a'), 'test')
  await makeKeys(join(dir, 'b'), 'other')
  node = wire(await loadIdentity({ keys: join(dir, 'a') }))
  const operator = await loadIdentity({ keys: join(dir, 'a'), as: 'op' })
  op = { ...wire(operator), serial: operator.info.serial }
  otherCluster = wire(await loadIdentity({ keys: join(dir, 'b') }))
  await makeKeys(join(dir, 'c'), 'test')
  otherCa = wire(await loadIdentity({ keys: join(dir, 'c') }))
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

/** What the suite needs from an implementation. */
interface Harness {
  name: string
  /** A started transport with `identity` (default: a node of cluster test), stopped at teardown. */
  transport (t: ExecutionContext, init?: Partial<TransportInit>, identity?: Wire): Promise<Transport>
  /** A client connection with `identity` (an operator's), as the REPL opens one. */
  client (address: string, identity: Wire): Promise<Connection>
  /** A bare connection with the node certificate, to send bytes no RpcConnection would. */
  raw (t: ExecutionContext, address: string): Promise<Raw>
  /** An address nothing listens on. */
  nowhere: string
}

interface Raw { send (bytes: Buffer, binary?: boolean): void, frames: Frame[], closed: Promise<number> }

function websockets (): Harness {
  return {
    name: 'websocket',
    transport: async (t, init = {}, identity = node) => {
      const tr = webSocketTransport({ listen: '127.0.0.1:0', ...init })({ identity, log: silentLogger })
      await tr.start()
      t.teardown(async () => await tr.stop())
      return tr
    },
    client: async (address, identity) => await connectTo(address, identity),
    raw: async (t, address) => {
      const ws = new WebSocket(`wss://${address}/origin/v1`, { ca: node.ca, cert: node.cert, key: node.key, checkServerIdentity: () => undefined } as unknown as WebSocket.ClientOptions)
      const frames: Frame[] = []
      ws.on('message', (data) => frames.push(decodeFrame(data as Buffer, 1 << 20)))
      ws.on('error', () => {})
      const closed = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)))
      await once(ws, 'open')
      t.teardown(() => { ws.terminate() })
      return { send: (bytes, binary = true) => ws.send(bytes, { binary }), frames, closed }
    },
    nowhere: '127.0.0.1:1'
  }
}

function memory (): Harness {
  const net = memoryNetwork()
  let n = 0
  return {
    name: 'memory',
    transport: async (t, init = {}, identity = node) => {
      const tr = net.transport({ listen: `mem-${++n}:7400`, ...init })({ identity, log: silentLogger })
      await tr.start()
      t.teardown(async () => await tr.stop())
      return tr
    },
    client: async (address, identity) => await net.connect(address, identity),
    raw: async (t, address) => {
      const channel = await net.rawConnect(address, node) as FrameChannel & { send (bytes: Buffer, binary?: boolean): void }
      const frames: Frame[] = []
      const closed = new Promise<number>((resolve) => channel.listen({ frame: (bytes) => frames.push(decodeFrame(bytes, 1 << 20)), close: (c) => resolve(c), error: () => {} }))
      t.teardown(() => { channel.terminate() })
      return { send: (bytes, binary = true) => channel.send(bytes, binary), frames, closed }
    },
    nowhere: 'mem-nowhere:7400'
  }
}

const code = (err: unknown): string | undefined => err instanceof OriginError ? err.code : undefined

function unary (name: string, handler: (p: any, ctx: CallContext) => unknown, extra: Partial<Method> = {}): Method {
  return { kind: 'unary', name, role: 'node', handler: async (p: any, ctx: CallContext) => await handler(p, ctx), ...extra } as Method
}

function stream (name: string, handler: (p: any, ctx: CallContext) => AsyncIterable<unknown>, extra: Partial<Method> = {}): Method {
  return { kind: 'stream', name, role: 'node', handler, ...extra } as Method
}

async function collect<T> (items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

const aborted = async (signal: AbortSignal): Promise<void> => { if (!signal.aborted) await once(signal, 'abort') }

const echo = unary('test.echo', (p, ctx) => ({ got: p, from: ctx.peer.role }), { payload: {} })

async function pair (h: Harness, t: ExecutionContext, methods: Method[], init: Partial<TransportInit> = {}) {
  const server = await h.transport(t, init)
  for (const m of methods) server.handle(m)
  const client = await h.transport(t, init)
  const conn = await client.connect(server.address)
  return { server, client, conn }
}

const cases: Array<[string, (h: Harness, t: ExecutionContext) => Promise<void>]> = [
  ['a unary call returns its value, and peer() says who answered', async (h, t) => {
    const { conn } = await pair(h, t, [echo])
    const payload = { s: 'hi', n: 42, list: [1, 'two', null], nested: { ok: true }, bytes: Buffer.from([1, 2]) }
    t.deepEqual(await conn.call('test.echo', payload), { got: payload, from: 'node' })
    t.like(conn.peer, { role: 'node', cluster: 'test', name: 'node' })
    t.regex(conn.peer.serial, /^[0-9A-F]+$/)
    t.true(conn.isOpen)
  }],
  ['the accepting side sees the caller as a verified peer and can call it back', async (h, t) => {
    const server = await h.transport(t)
    const client = await h.transport(t)
    client.handle(unary('test.back', (_p, ctx) => ctx.peer.name))
    const [inbound] = await Promise.all([
      new Promise<Connection>((resolve) => server.events.once('connection', resolve)),
      client.connect(server.address)
    ])
    t.like(inbound.peer, { role: 'node', cluster: 'test' })
    t.is(await inbound.call('test.back'), 'node')
  }],
  ['errors keep their code, message and data; a plain Error is E_INTERNAL; an unknown method is E_UNKNOWN_METHOD', async (h, t) => {
    const { conn } = await pair(h, t, [
      unary('test.find', () => { throw new OriginError('E_NOT_FOUND', 'no node n9', { node: 'n9' }) }),
      unary('test.crash', () => { throw new TypeError('kaboom') })
    ])
    const found = await t.throwsAsync(conn.call('test.find'))
    t.is(code(found), 'E_NOT_FOUND')
    t.is(found.message, 'no node n9')
    t.deepEqual((found as OriginError).data, { node: 'n9' })
    const crash = await t.throwsAsync(conn.call('test.crash'))
    t.is(code(crash), 'E_INTERNAL')
    t.is(crash.message, 'kaboom')
    t.is(code(await t.throwsAsync(conn.call('test.nope'))), 'E_UNKNOWN_METHOD')
  }],
  ['payloads are checked against the method schema; a method without one takes none', async (h, t) => {
    let runs = 0
    const { conn } = await pair(h, t, [
      unary('test.greet', (p: { name: string }) => { runs++; return `hello ${p.name}` }, { payload: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', maxLength: 20 } } } }),
      unary('test.bare', () => { runs++; return 'ok' })
    ])
    t.is(await conn.call('test.greet', { name: 'ada' }), 'hello ada')
    const bad = await t.throwsAsync(conn.call('test.greet', { name: 7 }))
    t.is(code(bad), 'E_PAYLOAD_INVALID')
    t.regex(bad.message, /name/)
    t.is(code(await t.throwsAsync(conn.call('test.bare', { x: 1 }))), 'E_PAYLOAD_INVALID')
    t.is(await conn.call('test.bare'), 'ok')
    t.is(runs, 2)
  }],
  ['a caller without the method role gets E_FORBIDDEN_ROLE; an operator reaches operator methods', async (h, t) => {
    const server = await h.transport(t)
    server.handle(echo)
    server.handle(unary('op.whoami', (_p, ctx) => ctx.peer.name, { role: 'operator' }))
    const conn = await h.client(server.address, op)
    t.teardown(() => conn.close())
    const err = await t.throwsAsync(conn.call('test.echo', {}))
    t.is(code(err), 'E_FORBIDDEN_ROLE')
    t.is(await conn.call('op.whoami'), 'op')
    const nodeConn = await (await h.transport(t)).connect(server.address)
    t.is(code(await t.throwsAsync(nodeConn.call('op.whoami'))), 'E_FORBIDDEN_ROLE')
  }],
  ['a certificate of another cluster or another CA is refused, either way, and so is connecting to nothing', async (h, t) => {
    const server = await h.transport(t)
    server.handle(echo)
    for (const identity of [otherCluster, otherCa]) {
      const stranger = await h.transport(t, {}, identity)
      t.is(code(await t.throwsAsync(stranger.connect(server.address))), 'E_UNREACHABLE')
      t.is(code(await t.throwsAsync(server.connect(stranger.address))), 'E_UNREACHABLE')
      await t.throwsAsync(h.client(server.address, identity))
    }
    t.is(code(await t.throwsAsync(server.connect(h.nowhere))), 'E_UNREACHABLE')
  }],
  ['streams yield items in order; leaving early cancels the handler; a failing stream delivers items then the error', async (h, t) => {
    let cancelled = false
    const { conn } = await pair(h, t, [
      stream('test.count', async function * (p: { to: number }) { for (let i = 1; i <= p.to; i++) yield i }, { payload: { type: 'object', properties: { to: { type: 'integer', maximum: 1000 } } } }),
      stream('test.forever', async function * () {
        try {
          for (let i = 0; ; i++) { yield i; await new Promise((resolve) => setTimeout(resolve, 5)) }
        } finally { cancelled = true }
      }),
      stream('test.fail', async function * () { yield 'a'; throw new OriginError('E_NOT_FOUND', 'gone') })
    ])
    t.deepEqual(await collect(conn.stream('test.count', { to: 300 })), Array.from({ length: 300 }, (_, i) => i + 1))
    for await (const i of conn.stream<number>('test.forever')) if (i === 3) break
    await waitFor(() => cancelled, { what: 'the stream handler to be stopped' })
    const got: unknown[] = []
    const err = await t.throwsAsync(async () => { for await (const v of conn.stream('test.fail')) got.push(v) })
    t.deepEqual(got, ['a'])
    t.is(code(err), 'E_NOT_FOUND')
  }],
  ['a call with no answer times out with E_TIMEOUT and the connection goes on', async (h, t) => {
    const { conn } = await pair(h, t, [unary('test.hang', async () => await new Promise(() => {})), echo])
    t.is(code(await t.throwsAsync(conn.call('test.hang', undefined, { timeoutMs: 100 }))), 'E_TIMEOUT')
    t.deepEqual(await conn.call('test.echo', 1), { got: 1, from: 'node' })
  }],
  ['an answer over the frame limit fails that call with E_FRAME_TOO_LARGE, the connection stays', async (h, t) => {
    const { conn } = await pair(h, t, [unary('test.big', () => 'x'.repeat(70_000)), echo], { maxFrameBytes: 65_536 })
    t.is(code(await t.throwsAsync(conn.call('test.big'))), 'E_FRAME_TOO_LARGE')
    t.deepEqual(await conn.call('test.echo', 2), { got: 2, from: 'node' })
  }],
  ['close rejects pending calls with E_CLOSED, aborts the handler, resolves closed on both ends', async (h, t) => {
    let handlerSignal: AbortSignal | undefined
    const server = await h.transport(t)
    server.handle(unary('test.hang', async (_p, ctx) => { handlerSignal = ctx.signal; await aborted(ctx.signal); return 'late' }))
    const inbound = new Promise<Connection>((resolve) => server.events.once('connection', resolve))
    const conn = await (await h.transport(t)).connect(server.address)
    const serverSide = await inbound
    const pending = conn.call('test.hang')
    await waitFor(() => handlerSignal !== undefined, { what: 'the handler to run' })
    conn.close('bye')
    t.is(code(await t.throwsAsync(pending)), 'E_CLOSED')
    await conn.closed
    await serverSide.closed
    await waitFor(() => handlerSignal?.aborted === true, { what: 'the handler signal to abort' })
    t.false(conn.isOpen)
    t.false(serverSide.isOpen)
    t.is(code(await t.throwsAsync(conn.call('test.hang'))), 'E_CLOSED')
  }],
  ['peer() pools one connection per address and reopens it once closed', async (h, t) => {
    const { server, client } = await pair(h, t, [echo])
    const [a, b] = await Promise.all([client.peer(server.address), client.peer(server.address)])
    t.is(a, b)
    a.close()
    await a.closed
    const c = await client.peer(server.address)
    t.not(c, a)
    t.deepEqual(await c.call('test.echo', 3), { got: 3, from: 'node' })
  }],
  ['setRevoked drops open connections with that serial and refuses new ones', async (h, t) => {
    const server = await h.transport(t)
    server.handle(unary('op.ping', () => 'pong', { role: 'operator' }))
    const conn = await h.client(server.address, op)
    t.is(await conn.call('op.ping'), 'pong')
    server.setRevoked([op.serial.toLowerCase()])
    await conn.closed
    t.false(conn.isOpen)
    await t.throwsAsync(h.client(server.address, op))
  }],
  ['a frame that is not msgpack, breaks the frame schema or is text closes that connection after saying why; others go on', async (h, t) => {
    const { server, conn } = await pair(h, t, [echo])
    for (const [bytes, binary] of [[Buffer.from([0xc1, 0x00]), true], [encodeFrame({ t: 'bogus', id: 1 } as unknown as Frame), true], [Buffer.from('hello'), false]] as Array<[Buffer, boolean]>) {
      const raw = await h.raw(t, server.address)
      raw.send(bytes, binary)
      t.is(await raw.closed, 1002)
      t.like(raw.frames[0], { t: 'err', id: 0, e: { code: 'E_FRAME_INVALID' } })
    }
    const raw = await h.raw(t, server.address)
    raw.send(encodeFrame({ t: 'req', id: 5, m: 'test.echo', p: 'raw' }))
    await waitFor(() => raw.frames.length > 0, { what: 'an answer to a raw request' })
    t.like(raw.frames[0], { t: 'res', id: 5, v: { got: 'raw', from: 'node' } })
    t.deepEqual(await conn.call('test.echo', 'still here'), { got: 'still here', from: 'node' })
  }],
  ['a message over maxFrameBytes closes that connection with 1009 before RPC sees it', async (h, t) => {
    const { server, conn } = await pair(h, t, [echo], { maxFrameBytes: 65_536 })
    const raw = await h.raw(t, server.address)
    raw.send(encodeFrame({ t: 'req', id: 1, m: 'test.echo', p: 'x'.repeat(70_000) }))
    t.is(await raw.closed, 1009)
    t.deepEqual(await conn.call('test.echo', 'ok'), { got: 'ok', from: 'node' })
  }],
  ['stop closes every connection, is idempotent, and frees the address', async (h, t) => {
    const { server, conn } = await pair(h, t, [echo])
    const address = server.address
    await server.stop()
    await server.stop()
    await conn.closed
    t.is(code(await t.throwsAsync(conn.call('test.echo', 1))), 'E_CLOSED')
    if (h.name === 'memory') {
      const again = await h.transport(t, { listen: address })
      t.is(again.address, address)
    }
  }]
]

for (const make of [websockets, memory]) {
  const h = make()
  for (const [title, run] of cases) test(`transport ${h.name}: ${title}`, async (t) => await run(h, t))
}

test('transport: one RPC round trip in memory and over websockets (logged, not asserted)', async (t) => {
  for (const make of [websockets, memory]) {
    const h = make()
    const { conn } = await pair(h, t, [echo])
    for (let i = 0; i < 200; i++) await conn.call('test.echo', i)
    const times: number[] = []
    for (let i = 0; i < 2000; i++) {
      const start = process.hrtime.bigint()
      await conn.call('test.echo', { i })
      times.push(Number(process.hrtime.bigint() - start) / 1000)
    }
    times.sort((a, b) => a - b)
    t.log(`${h.name}: p50 ${times[1000].toFixed(0)} µs, p99 ${times[1980].toFixed(0)} µs over 2000 sequential calls`)
  }
  t.pass()
})

