import test, { type ExecutionContext } from 'ava'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { OriginError } from '../../node/errors'
import { loadIdentity, type Identity } from '../../node/keys'
import { silentLogger } from '../../node/log'
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

function stream (name: string, handler: (p: any, ctx: CallContext) => AsyncIterable<unknown>): Method {
  return { kind: 'stream', name, role: 'node', handler }
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

const echo = unary('test.echo', (p) => ({ got: p }))

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
  t.deepEqual(await conn.call('test.echo', 1), { got: 1 })
  t.true(conn.isOpen)
})

test('rpc: 200 concurrent calls each get their own answer', async (t) => {
  // Answers come back out of order, so only the request ids can pair them up.
  const double = unary('test.double', async (p: { n: number }) => {
    await new Promise((resolve) => setTimeout(resolve, (200 - p.n) % 17))
    return { n: p.n, twice: p.n * 2 }
  })
  const { conn } = await pair(t, [double])
  const answers = await Promise.all(Array.from({ length: 200 }, async (_, n) => await conn.call('test.double', { n })))
  t.deepEqual(answers, Array.from({ length: 200 }, (_, n) => ({ n, twice: n * 2 })))
})

test('rpc: a stream yields its items in order, then ends', async (t) => {
  const count = stream('test.count', async function * (p: { to: number }) {
    for (let i = 0; i < p.to; i++) yield i
  })
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
  const client = await transport(t, [unary('client.hello', (p: { from: string }, ctx) => `hello ${p.from}, I am ${ctx.peer.role === 'node' ? 'a node' : '?'}`)])
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
