import test, { type ExecutionContext } from 'ava'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { OriginError } from '../../node/errors'
import { loadIdentity, type Identity } from '../../node/keys'
import { silentLogger } from '../../node/log'
import WebSocket from 'ws'
import { decodeFrame, encodeFrame, type Frame } from '../../node/transport/frames'
import { connectTo, webSocketTransport, type CallContext, type Connection, type Method, type Transport, type TransportInit } from '../../node/transport'
import { makeKeys } from '../helpers/cluster'
import { waitFor } from '../helpers/wait'

type Wire = { ca: string, cert: string, key: string, cluster: string }

// Keys once per file: RSA key generation is the slow part.
let dir = ''
let node: Wire
let op: Wire & { serial: string }

const wire = (id: Identity): Wire => ({ ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster })

test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-rpc-'))
  await makeKeys(dir, 'test')
  node = wire(await loadIdentity({ keys: dir }))
  const operator = await loadIdentity({ keys: dir, as: 'op' })
  op = { ...wire(operator), serial: operator.info.serial }
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

function code (err: unknown): string | undefined {
  return err instanceof OriginError ? err.code : undefined
}

function unary (name: string, handler: (p: any, ctx: CallContext) => unknown, extra: Partial<Method> = {}): Method {
  return { kind: 'unary', name, role: 'node', handler: async (p: any, ctx: CallContext) => await handler(p, ctx), ...extra } as Method
}

function stream (name: string, handler: (p: any, ctx: CallContext) => AsyncIterable<unknown>, extra: Partial<Method> = {}): Method {
  return { kind: 'stream', name, role: 'node', handler, ...extra } as Method
}

/** Resolves once `signal` is aborted. */
function aborted (signal: AbortSignal): Promise<void> {
  return signal.aborted ? Promise.resolve() : once(signal, 'abort').then(() => undefined)
}

/** A started transport on a free loopback port, stopped when the test ends. */
async function transport (t: ExecutionContext, methods: Method[] = [], init: Partial<TransportInit> = {}): Promise<Transport> {
  const tr = webSocketTransport({ listen: '127.0.0.1:0', ...init })({ identity: node, log: silentLogger })
  for (const m of methods) tr.handle(m)
  await tr.start()
  t.teardown(async () => { await tr.stop() })
  return tr
}

/** A server with `methods`, a client transport, and the client's connection to the server. */
async function pair (t: ExecutionContext, methods: Method[], clientInit: Partial<TransportInit> = {}) {
  const server = await transport(t, methods)
  const client = await transport(t, [], clientInit)
  const conn = await client.connect(server.address)
  return { server, client, conn }
}

async function operatorConnection (t: ExecutionContext, address: string): Promise<Connection> {
  const conn = await connectTo(address, op)
  t.teardown(() => { conn.close() })
  return conn
}

async function collect<T> (items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

/** Takes any payload: `{}` is the schema that accepts everything (without one, a method takes none). */
const echo = unary('test.echo', (p) => ({ got: p }), { payload: {} })

test('rpc: a unary call returns its value', async (t) => {
  const { conn } = await pair(t, [echo])
  const payload = { s: 'hi', n: 42, list: [1, 'two', null], nested: { ok: true } }
  t.deepEqual(await conn.call('test.echo', payload), { got: payload })
  t.deepEqual(await conn.call('test.echo'), { got: undefined })
  t.like(conn.peer, { role: 'node', cluster: 'test', name: 'node' })
})

test('rpc: an OriginError thrown by a handler reaches the caller with its code, message and data', async (t) => {
  const { conn } = await pair(t, [unary('test.find', () => { throw new OriginError('E_NOT_FOUND', 'no node n9', { node: 'n9', tried: [1, 2] }) })])
  const err = await t.throwsAsync(conn.call('test.find'), { instanceOf: OriginError })
  t.is(code(err), 'E_NOT_FOUND')
  t.is(err.message, 'no node n9')
  t.deepEqual((err as OriginError).data, { node: 'n9', tried: [1, 2] })
})

test('rpc: a plain Error thrown by a handler arrives as E_INTERNAL with its message', async (t) => {
  const { conn } = await pair(t, [unary('test.crash', () => { throw new TypeError('kaboom') })])
  const err = await t.throwsAsync(conn.call('test.crash'))
  t.is(code(err), 'E_INTERNAL')
  t.is(err.message, 'kaboom')
  t.is((err as OriginError).caller, 'test.crash')
})

test('rpc: an unknown method fails with E_UNKNOWN_METHOD', async (t) => {
  const { conn } = await pair(t, [echo])
  const err = await t.throwsAsync(conn.call('test.nope'))
  t.is(code(err), 'E_UNKNOWN_METHOD')
  t.regex(err.message, /test\.nope/)
  t.is(code(await t.throwsAsync(collect(conn.stream('test.nope')))), 'E_UNKNOWN_METHOD')
})

test('rpc: a payload that fails the method schema is refused with E_PAYLOAD_INVALID naming the field', async (t) => {
  let calls = 0
  const greet = unary('test.greet', (p: { name: string }) => { calls++; return `hello ${p.name}` }, {
    payload: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1 } } }
  })
  const { conn } = await pair(t, [greet])
  t.is(await conn.call('test.greet', { name: 'ada' }), 'hello ada')
  const missing = await t.throwsAsync(conn.call('test.greet', {}))
  t.is(code(missing), 'E_PAYLOAD_INVALID')
  t.regex(missing.message, /missing required field "name"/)
  const wrongType = await t.throwsAsync(conn.call('test.greet', { name: 5 }))
  t.is(code(wrongType), 'E_PAYLOAD_INVALID')
  t.regex(wrongType.message, /\/name: must be string/)
  t.regex((await t.throwsAsync(conn.call('test.greet', { name: 'x', colour: 'red' }))).message, /unknown field "colour"/)
  t.is(calls, 1, 'the handler never saw a bad payload')
})

test('rpc: a caller whose certificate lacks the method role gets E_FORBIDDEN_ROLE', async (t) => {
  const server = await transport(t, [echo])
  const conn = await operatorConnection(t, server.address)
  const err = await t.throwsAsync(conn.call('test.echo', 1))
  t.is(code(err), 'E_FORBIDDEN_ROLE')
  t.like((err as OriginError).data, { need: 'node', have: 'operator' })
})

test('rpc: a handler that never answers fails with E_TIMEOUT after callTimeoutMs, and the connection goes on', async (t) => {
  let release: ((v: string) => void) | undefined
  const hang = unary('test.hang', async (_p, ctx) => await aborted(ctx.signal))
  const late = unary('test.late', async () => await new Promise((resolve) => { release = resolve }))
  const { conn } = await pair(t, [hang, late, echo], { callTimeoutMs: 300 })
  const started = Date.now()
  const err = await t.throwsAsync(conn.call('test.hang'))
  const took = Date.now() - started
  t.is(code(err), 'E_TIMEOUT')
  t.like((err as OriginError).data, { method: 'test.hang', timeoutMs: 300 })
  t.true(took >= 250 && took < 10_000, `took ${took} ms`)
  t.is(code(await t.throwsAsync(conn.call('test.late', undefined, { timeoutMs: 50 }))), 'E_TIMEOUT')
  await waitFor(() => release !== undefined, { what: 'test.late to be running' })
  release?.('too late') // the answer arrives after its caller gave up, and is dropped
  // Its own timeout: this call shows the connection goes on, and 300 ms is too short a wait
  // for a busy test process (20 other pairs start at once).
  t.deepEqual(await conn.call('test.echo', 1, { timeoutMs: 5000 }), { got: 1 })
  t.true(conn.isOpen)
})

test('rpc: calls with different timeouts each fail at their own deadline, with the same error as ever, and answered calls between them are untouched', async (t) => {
  const hang = unary('test.hang', async (_p, ctx) => await aborted(ctx.signal))
  const { conn } = await pair(t, [hang, echo], { callTimeoutMs: 5000 })
  const started = performance.now()
  const settled: Array<{ which: string, ms: number, err?: unknown }> = []
  const track = async (which: string, p: Promise<unknown>): Promise<void> => {
    try { await p; settled.push({ which, ms: performance.now() - started }) } catch (err) { settled.push({ which, ms: performance.now() - started, err }) }
  }
  // Added latest-deadline first: the one timer must still wake for the earliest.
  const all = Promise.all([
    track('slow', conn.call('test.hang', undefined, { timeoutMs: 600 })),
    track('quick', conn.call('test.hang', undefined, { timeoutMs: 150 })),
    ...Array.from({ length: 20 }, async (_, i) => await track(`echo${i}`, conn.call('test.echo', i, { timeoutMs: 3000 })))
  ])
  await all
  const quick = settled.find((s) => s.which === 'quick')
  const slow = settled.find((s) => s.which === 'slow')
  t.is(code(quick?.err), 'E_TIMEOUT')
  t.regex((quick?.err as Error).message, /^test\.hang got no answer from node node at 127\.0\.0\.1:\d+ within 150 ms$/)
  t.deepEqual((quick?.err as OriginError).data, { method: 'test.hang', timeoutMs: 150 })
  t.is(code(slow?.err), 'E_TIMEOUT')
  t.deepEqual((slow?.err as OriginError).data, { method: 'test.hang', timeoutMs: 600 })
  t.true((quick?.ms ?? 0) >= 149, `the 150 ms call failed after ${quick?.ms} ms`)
  t.true((slow?.ms ?? 0) >= 599, `the 600 ms call failed after ${slow?.ms} ms`)
  t.true(settled.indexOf(quick!) < settled.indexOf(slow!), `the earlier deadline failed first: ${JSON.stringify(settled.map((s) => [s.which, Math.round(s.ms)]))}`)
  t.deepEqual(settled.filter((s) => s.which.startsWith('echo') && s.err !== undefined).map((s) => `${s.which}: ${String(s.err)}`), [], 'every answered call resolved')
  t.true(conn.isOpen)
})

test('rpc: a handler may answer with a plain value, a promise or a thenable, or throw before returning; each reaches the caller', async (t) => {
  const plain: Method = { kind: 'unary', name: 'test.plain', role: 'node', handler: () => ({ at: 'once' }) }
  const promised: Method = { kind: 'unary', name: 'test.promised', role: 'node', handler: async () => await Promise.resolve('later') }
  const thenable: Method = { kind: 'unary', name: 'test.thenable', role: 'node', handler: () => ({ then: (ok: (v: unknown) => void) => { setImmediate(() => ok('via then')) } }) as unknown as Promise<string> }
  const throws: Method = { kind: 'unary', name: 'test.throws', role: 'node', handler: () => { throw new OriginError('E_NOT_FOUND', 'nothing here', { sync: true }) } }
  const rejects: Method = { kind: 'unary', name: 'test.rejects', role: 'node', handler: async () => { throw new TypeError('async kaboom') } }
  const { conn } = await pair(t, [plain, promised, thenable, throws, rejects])
  t.deepEqual(await conn.call('test.plain'), { at: 'once' })
  t.is(await conn.call('test.promised'), 'later')
  t.is(await conn.call('test.thenable'), 'via then')
  const sync = await t.throwsAsync(conn.call('test.throws'))
  t.is(code(sync), 'E_NOT_FOUND')
  t.deepEqual((sync as OriginError).data, { sync: true })
  const async = await t.throwsAsync(conn.call('test.rejects'))
  t.is(code(async), 'E_INTERNAL')
  t.is(async.message, 'async kaboom')
})

test('rpc: a unary handler that first asks for its signal after the connection closed finds it aborted', async (t) => {
  let proceed: (() => void) | undefined
  let late: AbortSignal | undefined
  const slow = unary('test.slow', async (_p, ctx) => {
    await new Promise<void>((resolve) => { proceed = resolve })
    late = ctx.signal
  })
  const { conn } = await pair(t, [slow])
  const call = t.throwsAsync(conn.call('test.slow'))
  await waitFor(() => proceed !== undefined, { what: 'the handler to be running' })
  conn.close()
  t.is(code(await call), 'E_CLOSED')
  await conn.closed
  await new Promise((resolve) => setTimeout(resolve, 50)) // let the server see the close too
  proceed?.()
  await waitFor(() => late !== undefined, { what: 'the handler to read its signal' })
  t.true(late?.aborted)
})

test('rpc: a burst of answers larger than one batched write all arrive intact', async (t) => {
  const big = unary('test.big', (p: { n: number }) => ({ n: p.n, fill: String.fromCharCode(97 + p.n % 26).repeat(20_000) }), {
    payload: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } }
  })
  const { conn } = await pair(t, [big])
  const answers = await Promise.all(Array.from({ length: 60 }, async (_, n) => await conn.call<{ n: number, fill: string }>('test.big', { n })))
  t.deepEqual(answers.map((a) => a.n), Array.from({ length: 60 }, (_, n) => n))
  t.true(answers.every((a) => a.fill.length === 20_000 && a.fill === String.fromCharCode(97 + a.n % 26).repeat(20_000)))
})

test('rpc: 200 concurrent calls each get their own answer', async (t) => {
  // Answers come back out of order, so only the request ids can pair them up.
  const double = unary('test.double', async (p: { n: number }) => {
    await new Promise((resolve) => setTimeout(resolve, (200 - p.n) % 17))
    return { n: p.n, twice: p.n * 2 }
  }, { payload: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } })
  const { conn } = await pair(t, [double])
  const answers = await Promise.all(Array.from({ length: 200 }, async (_, n) => await conn.call('test.double', { n })))
  t.deepEqual(answers, Array.from({ length: 200 }, (_, n) => ({ n, twice: n * 2 })))
})

test('rpc: a stream yields its items in order, then ends', async (t) => {
  const count = stream('test.count', async function * (p: { to: number }) {
    for (let i = 0; i < p.to; i++) yield i
  }, { payload: { type: 'object', required: ['to'], properties: { to: { type: 'integer', maximum: 1000 } } } })
  const { conn } = await pair(t, [count])
  t.deepEqual(await collect(conn.stream('test.count', { to: 100 })), Array.from({ length: 100 }, (_, i) => i))
  t.deepEqual(await collect(conn.stream('test.count', { to: 0 })), [])
})

test('rpc: leaving a for-await early cancels the stream and aborts the handler signal', async (t) => {
  let signal: AbortSignal | undefined
  const ticks = stream('test.ticks', async function * (_p, ctx) {
    signal = ctx.signal
    for (let i = 0; i < 5; i++) yield i
    await aborted(ctx.signal) // more would come; only a cancel ends this
  })
  const { conn } = await pair(t, [ticks, echo])
  const seen: number[] = []
  for await (const i of conn.stream<number>('test.ticks')) {
    seen.push(i)
    if (seen.length === 3) break
  }
  t.deepEqual(seen, [0, 1, 2])
  await waitFor(() => signal?.aborted, { what: 'the server-side handler to be aborted' })
  t.true(conn.isOpen, 'the cancel came from the caller, not from a closed connection')
  t.deepEqual(await conn.call('test.echo', 'still here'), { got: 'still here' })
})

test('rpc: a stream whose handler throws delivers the items before it, then the error', async (t) => {
  const broken = stream('test.broken', async function * () {
    yield 'a'
    yield 'b'
    throw new OriginError('E_NOT_FOUND', 'ran out of c', { at: 2 })
  })
  const { conn } = await pair(t, [broken])
  const seen: string[] = []
  const err = await t.throwsAsync(async () => { for await (const s of conn.stream<string>('test.broken')) seen.push(s) })
  t.deepEqual(seen, ['a', 'b'])
  t.is(code(err), 'E_NOT_FOUND')
  t.is(err.message, 'ran out of c')
  t.deepEqual((err as OriginError).data, { at: 2 })
})

test('rpc: closing a connection rejects pending calls and streams with E_CLOSED and aborts the handlers', async (t) => {
  const signals: AbortSignal[] = []
  const hang = unary('test.hang', async (_p, ctx) => { signals.push(ctx.signal); await aborted(ctx.signal) })
  const quiet = stream('test.quiet', async function * (_p, ctx) { signals.push(ctx.signal); await aborted(ctx.signal) })
  const { conn } = await pair(t, [hang, quiet])
  const call = t.throwsAsync(conn.call('test.hang'))
  const next = t.throwsAsync(conn.stream('test.quiet')[Symbol.asyncIterator]().next())
  await waitFor(() => signals.length === 2, { what: 'both handlers to be running' })
  conn.close()
  t.is(code(await call), 'E_CLOSED')
  t.is(code(await next), 'E_CLOSED')
  await conn.closed
  t.false(conn.isOpen)
  await waitFor(() => signals.every((s) => s.aborted), { what: 'the server-side handlers to be aborted' })
  t.is(code(await t.throwsAsync(conn.call('test.hang'))), 'E_CLOSED', 'a call on a closed connection fails at once')
  t.is(code(await t.throwsAsync(collect(conn.stream('test.quiet')))), 'E_CLOSED')
})

test('rpc: the accepting side can call methods of the side that dialed', async (t) => {
  const server = await transport(t)
  const client = await transport(t, [unary('client.hello', (p: { from: string }, ctx) => `hello ${p.from}, I am ${ctx.peer.role === 'node' ? 'a node' : '?'}`, {
    payload: { type: 'object', required: ['from'], properties: { from: { type: 'string', maxLength: 100 } } }
  })])
  const inbound = once(server.events, 'connection') as Promise<[Connection]>
  const conn = await client.connect(server.address)
  const [back] = await inbound
  t.like(back.peer, { role: 'node', cluster: 'test', name: 'node' })
  t.is(await back.call('client.hello', { from: 'server' }), 'hello server, I am a node')
  t.true(conn.isOpen)
})

test('rpc: setRevoked drops an open connection with that serial and refuses new ones', async (t) => {
  const whoami = unary('test.whoami', (_p, ctx) => ({ role: ctx.peer.role, name: ctx.peer.name, serial: ctx.peer.serial }), { role: 'operator' })
  const server = await transport(t, [whoami, echo])
  const client = await transport(t)
  const nodeConn = await client.connect(server.address)
  const opConn = await operatorConnection(t, server.address)
  t.deepEqual(await opConn.call('test.whoami'), { role: 'operator', name: 'op', serial: op.serial })

  server.setRevoked([op.serial.toLowerCase()])
  await opConn.closed
  t.false(opConn.isOpen)
  const refused = await t.throwsAsync(connectTo(server.address, op))
  t.is(code(refused), 'E_UNREACHABLE')
  t.regex(refused.message, new RegExp(`serial ${op.serial}\\) is revoked`))
  t.deepEqual(await nodeConn.call('test.echo', 'ok'), { got: 'ok' }, 'other certificates are not affected')

  server.setRevoked([])
  const again = await operatorConnection(t, server.address)
  t.like(await again.call('test.whoami'), { name: 'op' })
})

test('rpc: stop closes every connection, rejects pending calls, and is idempotent', async (t) => {
  const hang = unary('test.hang', async (_p, ctx) => await aborted(ctx.signal))
  const { server, conn } = await pair(t, [hang, echo])
  const opConn = await operatorConnection(t, server.address)
  const pending = t.throwsAsync(conn.call('test.hang'))
  await Promise.all([server.stop(), server.stop()])
  await server.stop()
  t.is(code(await pending), 'E_CLOSED')
  await Promise.all([conn.closed, opConn.closed])
  t.false(conn.isOpen)
  t.false(opConn.isOpen)
  t.is(code(await t.throwsAsync(connectTo(server.address, op, { connectTimeoutMs: 2000 }))), 'E_UNREACHABLE')
})

test('rpc: a method registered without a payload schema takes no payload: a call that sends one is refused, the handler never runs', async (t) => {
  let calls = 0
  const report = unary('test.report', () => { calls++; return 'ok' })
  const { conn } = await pair(t, [report])
  t.is(await conn.call('test.report'), 'ok')
  t.is(await conn.call('test.report', null), 'ok', 'nil is no payload')
  for (const [payload, got] of [[{}, 'an object'], [[], 'an array'], ['x', 'a string'], [0, 'a number'], [false, 'a boolean']] as const) {
    const err = await t.throwsAsync(conn.call('test.report', payload))
    t.is(code(err), 'E_PAYLOAD_INVALID')
    t.is(err.message, `test.report takes no payload, and this call sent ${got}`)
  }
  t.is(calls, 2)
  t.true(conn.isOpen, 'a refused call does not close the connection')
})

test('rpc: a huge error thrown by a handler reaches the caller bounded, with its code', async (t) => {
  const { conn } = await pair(t, [
    unary('test.huge', () => { throw new OriginError('E_NOT_FOUND', 'n'.repeat(10_000_000), { node: 'n9', list: Array.from({ length: 200_000 }, (_, i) => i) }) }),
    unary('test.crash', () => { throw new Error('boom '.repeat(2_000_000)) }),
    echo
  ])
  const err = await t.throwsAsync(conn.call('test.huge')) as OriginError
  t.is(err.code, 'E_NOT_FOUND')
  t.true(err.message.startsWith('nnnn') && err.message.length < 2100, `message of ${err.message.length} characters`)
  t.like(err.data, { node: 'n9', truncated: { dropped: ['list'] } })
  t.true(JSON.stringify(err.toJSON()).length < 5000)
  const crash = await t.throwsAsync(conn.call('test.crash')) as OriginError
  t.is(crash.code, 'E_INTERNAL')
  t.true(crash.message.length < 2100)
  t.deepEqual(await conn.call('test.echo', 1), { got: 1 })
})

test('rpc: an invalid payload of 9,000 members is refused quickly with a small error naming the first problem', async (t) => {
  let calls = 0
  const member = {
    type: 'object',
    additionalProperties: false,
    required: ['id', 'address', 'incarnation', 'status', 'hub'],
    properties: {
      id: { type: 'string', pattern: '^[a-z0-9]+$' },
      address: { type: 'string', minLength: 3 },
      incarnation: { type: 'integer', minimum: 0 },
      heartbeat: { type: 'integer', minimum: 0 },
      status: { enum: ['alive', 'suspect', 'dead'] },
      hub: { type: 'boolean' },
      characteristics: { type: 'object', required: ['cpus', 'memoryMb'], properties: { cpus: { type: 'integer' }, memoryMb: { type: 'number' } } }
    }
  }
  const gossip = { type: 'object', required: ['from', 'table'], properties: { from: { type: 'string' }, table: { type: 'object', additionalProperties: member } } }
  const { conn } = await pair(t, [unary('test.gossip', () => { calls++ }, { payload: gossip })])
  const table: Record<string, unknown> = {}
  for (let i = 0; i < 9000; i++) table[`n${i}`] = { id: `N${i}`, address: 'x', incarnation: -1, heartbeat: 0, status: 'zombie', hub: 1, characteristics: {} }
  const started = Date.now()
  const err = await t.throwsAsync(conn.call('test.gossip', { from: 'x', table }, { timeoutMs: 20_000 })) as OriginError
  const ms = Date.now() - started
  t.is(err.code, 'E_PAYLOAD_INVALID')
  t.regex(err.message, /^payload of test\.gossip is invalid: \/table\/n0/)
  // It was an 18 MB error frame (every problem of every member, each with its params).
  const size = encodeFrame({ t: 'err', id: 1, e: err.toJSON() }).length
  t.true(size < 5000, `error frame of ${size} bytes`)
  t.true(ms < 5000, `answered in ${ms} ms`)
  t.is(calls, 0)
})

test('rpc: an answer the caller would refuse for its number of values fails that call instead, and the connection stays', async (t) => {
  const { conn } = await pair(t, [
    unary('test.many', () => new Array(600_000).fill(0)),
    stream('test.manyItems', async function * () { yield 1; yield new Array(600_000).fill(0) }),
    echo
  ])
  const err = await t.throwsAsync(conn.call('test.many', undefined, { timeoutMs: 20_000 }))
  t.is(code(err), 'E_FRAME_TOO_LARGE')
  t.is(err.message, 'a res frame holds more than 524288 values')
  const seen: unknown[] = []
  const failed = await t.throwsAsync(async () => { for await (const v of conn.stream('test.manyItems')) seen.push(v) })
  t.deepEqual(seen, [1])
  t.is(failed.message, 'an item frame holds more than 524288 values')
  t.deepEqual(await conn.call('test.echo', 'still open'), { got: 'still open' })
})

/** A raw websocket with the node certificate, to send bytes no RpcConnection would. */
async function rawSocket (t: ExecutionContext, address: string): Promise<{ ws: WebSocket, frames: Frame[], closed: Promise<number> }> {
  const ws = new WebSocket(`wss://${address}/origin/v1`, { ca: node.ca, cert: node.cert, key: node.key, checkServerIdentity: () => undefined } as unknown as WebSocket.ClientOptions)
  const frames: Frame[] = []
  ws.on('message', (data) => frames.push(decodeFrame(data as Buffer, 1 << 20)))
  const closed = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)))
  await once(ws, 'open')
  t.teardown(() => { ws.terminate() })
  return { ws, frames, closed }
}

/** A valid req frame whose payload is `n` empty maps. */
function emptyMapsRequest (method: string, n: number): Buffer {
  const head = encodeFrame({ t: 'req', id: 7, m: method, p: null }).subarray(0, -1)
  const array = Buffer.alloc(5 + n, 0x80)
  array[0] = 0xdd
  array.writeUInt32BE(n, 1)
  return Buffer.concat([head, array])
}

test('rpc: a 4 MiB frame of empty maps closes that connection before it is decoded; the server goes on', async (t) => {
  const report = unary('test.report', () => 'ok')
  const { server, conn } = await pair(t, [report, echo])
  const { ws, frames, closed } = await rawSocket(t, server.address)
  const heap = process.memoryUsage().heapUsed
  const started = Date.now()
  ws.send(emptyMapsRequest('test.report', (4 << 20) - 40))
  t.is(await closed, 1002)
  const ms = Date.now() - started
  const grewMb = (process.memoryUsage().heapUsed - heap) / 1e6
  t.like(frames[0], { t: 'err', id: 0, e: { code: 'E_FRAME_TOO_LARGE' } })
  t.true(ms < 2000, `closed after ${ms} ms`)
  t.true(grewMb < 60, `heap grew ${grewMb.toFixed(0)} MB`) // decoding it took 270 MB
  t.deepEqual(await conn.call('test.echo', 'still here'), { got: 'still here' })
})

test('rpc: under the element limit, empty maps sent to a method without a payload are refused and the connection stays', async (t) => {
  let calls = 0
  const report = unary('test.report', () => { calls++; return 'ok' })
  const { server } = await pair(t, [report])
  const { ws, frames } = await rawSocket(t, server.address)
  ws.send(emptyMapsRequest('test.report', 100_000))
  await waitFor(() => frames.length === 1, { what: 'the answer' })
  t.like(frames[0], { t: 'err', id: 7, e: { code: 'E_PAYLOAD_INVALID', message: 'test.report takes no payload, and this call sent an array' } })
  ws.send(encodeFrame({ t: 'req', id: 8, m: 'test.report' }))
  await waitFor(() => frames.length === 2, { what: 'the second answer' })
  t.deepEqual(frames[1], { t: 'res', id: 8, v: 'ok' })
  t.is(calls, 1)
})
