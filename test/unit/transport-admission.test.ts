import test, { type ExecutionContext } from 'ava'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import WebSocket from 'ws'
import { addressKey } from '../../node/transport/admission'
import { issueCertificate, loadIdentity, type Identity } from '../../node/keys'
import type { Logger } from '../../node/log'
import { connectTo, webSocketTransport, type Transport, type TransportInit } from '../../node/transport'
import { makeKeys } from '../helpers/cluster'
import { waitFor } from '../helpers/wait'

type Wire = { ca: string, cert: string, key: string, cluster: string }
const wire = (id: Identity): Wire => ({ ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster })

let dir = ''
let node: Wire
let op: Wire
let expired: Wire

test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-admission-'))
  await makeKeys(dir, 'test')
  node = wire(await loadIdentity({ keys: dir }))
  op = wire(await loadIdentity({ keys: dir, as: 'op' }))
  const ca = { certPem: await readFile(join(dir, 'ca.crt'), 'utf8'), keyPem: await readFile(join(dir, 'ca.key'), 'utf8') }
  const old = issueCertificate({ ca, role: 'operator', cluster: 'test', name: 'old', notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) })
  expired = { ca: ca.certPem, cert: old.certPem, key: old.keyPem, cluster: 'test' }
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

function capture (): { log: Logger, lines: string[] } {
  const lines: string[] = []
  const log: Logger = { debug () {}, info () {}, warn: (m) => lines.push(m), error: (m) => lines.push(m), child: () => log }
  return { log, lines }
}

async function server (t: ExecutionContext, init: Partial<TransportInit>): Promise<{ tr: Transport, lines: string[], host: string, port: number }> {
  const { log, lines } = capture()
  const tr = webSocketTransport({ listen: '127.0.0.1:0', ...init })({ identity: node, log })
  tr.handle({ kind: 'unary', name: 'test.ping', role: 'node', handler: () => 'pong' })
  tr.handle({ kind: 'unary', name: 'test.whoami', role: 'operator', handler: (_p, ctx) => ctx.peer.name })
  await tr.start()
  t.teardown(async () => { await tr.stop() })
  const [host, port] = tr.address.split(':')
  return { tr, lines, host, port: Number(port) }
}

interface Idle { socket: net.Socket, openedAt: number, closedAt?: number }

/** Connections that send nothing (`tls`: finish a TLS handshake without a certificate first). */
async function idle (t: ExecutionContext, port: number, n: number, o: { from: string, tls?: boolean }): Promise<Idle[]> {
  const out: Idle[] = []
  await Promise.all(Array.from({ length: n }, async () => {
    const entry: Idle = { socket: undefined as unknown as net.Socket, openedAt: Date.now() }
    await new Promise<void>((resolve) => {
      const s = o.tls === true
        ? tls.connect({ host: '127.0.0.1', port, localAddress: o.from, ca: node.ca, checkServerIdentity: () => undefined } as tls.ConnectionOptions, () => resolve())
        : net.connect({ host: '127.0.0.1', port, localAddress: o.from }, () => resolve())
      entry.socket = s
      s.on('error', () => resolve())
      s.on('close', () => { entry.closedAt ??= Date.now(); resolve() })
      s.resume()
    })
    out.push(entry)
  }))
  t.teardown(() => { for (const i of out) i.socket.destroy() })
  return out
}

const open = (list: Idle[]): number => list.filter((i) => i.closedAt === undefined).length

/** A websocket handshake without a certificate (or with `id`'s): the server answers 403 and says why. */
async function refusedUpgrade (address: string, id?: Wire): Promise<string> {
  return await new Promise<string>((resolve) => {
    const ws = new WebSocket(`wss://${address}/origin/v1`, { ca: node.ca, ...(id === undefined ? {} : { cert: id.cert, key: id.key }), checkServerIdentity: () => undefined } as unknown as WebSocket.ClientOptions)
    ws.once('open', () => { ws.terminate(); resolve('open') })
    ws.once('unexpected-response', (_req, res) => { res.resume(); res.on('end', () => resolve(String(res.statusCode))) })
    ws.once('error', (e) => resolve(`error: ${e.message}`))
  })
}

test('admission: addresses are grouped by what one party controls', (t) => {
  t.is(addressKey('10.1.2.3'), '10.1.2.3')
  t.is(addressKey('::ffff:10.1.2.3'), '10.1.2.3')
  t.is(addressKey('2001:db8:aa:bb:1:2:3:4'), '2001:db8:aa:bb::/64')
  t.is(addressKey('2001:db8:aa:bb::9'), '2001:db8:aa:bb::/64')
  t.is(addressKey('2001:db8::1'), '2001:db8:0:0::/64')
  t.is(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
})

test('admission: a connection that never authenticates is closed after handshakeTimeoutMs, whether it sent nothing or finished TLS without a certificate', async (t) => {
  const { tr, lines, port } = await server(t, { handshakeTimeoutMs: 700, refusalLogIntervalMs: 1000 })
  const silent = await idle(t, port, 5, { from: '127.0.0.2' })
  const noCert = await idle(t, port, 5, { from: '127.0.0.2', tls: true })
  const all = [...silent, ...noCert]
  t.true(noCert.every((i) => i.closedAt === undefined), 'a TLS handshake without a certificate succeeds (the refusal comes with a reason at the upgrade)')
  await waitFor(() => open(all) === 0, { what: 'every idle connection to be closed' })
  for (const i of all) t.true((i.closedAt ?? 0) - i.openedAt >= 500, `held ${(i.closedAt ?? 0) - i.openedAt} ms`)
  t.regex(lines[0], /^refused a connection from 127\.0\.0\.2:\d+: did not authenticate within 700 ms$/)
  t.is(lines.filter((l) => l.startsWith('refused a ')).length, 1, 'one line in full; the other nine are counted')
  const conn = await connectTo(tr.address, node)
  t.is(await conn.call('test.ping'), 'pong', 'an authenticated connection outlives the handshake timeout')
  await waitFor(() => lines.includes('refused 9 more connections in the last 1 s: 9 handshake timeout'), { what: 'the summary' })
  t.true(conn.isOpen)
  conn.close()
})

test('admission: one address may keep maxUnauthenticatedPerAddress connections waiting; more are closed at once, other addresses still get in', async (t) => {
  const { tr, lines, port } = await server(t, { maxUnauthenticatedPerAddress: 4, handshakeTimeoutMs: 30_000 })
  const flood = await idle(t, port, 20, { from: '127.0.0.3' })
  await waitFor(() => open(flood) === 4, { what: 'all but 4 to be closed' })
  t.true(flood.every((i) => i.closedAt === undefined || i.closedAt - i.openedAt < 5000), 'the others were closed at once, not after the handshake timeout')
  t.regex(lines.join('\n'), /refused a connection from 127\.0\.0\.3:\d+: 4 connections from 127\.0\.0\.3 are already waiting to authenticate \(the limit per address\)/)
  const conn = await connectTo(tr.address, op)
  t.is(await conn.call('test.whoami'), 'op')
  conn.close()
  t.is(open(flood), 4)
})

test('admission: when maxUnauthenticated connections wait, the oldest makes room, so a node and an operator still get in', async (t) => {
  const { tr, lines, port } = await server(t, { maxUnauthenticated: 8, handshakeTimeoutMs: 30_000 })
  const flood = [...await idle(t, port, 30, { from: '127.0.0.4', tls: true }), ...await idle(t, port, 30, { from: '127.0.0.5' })]
  await waitFor(() => open(flood) === 8, { what: 'only 8 to be left waiting' })
  const nodeConn = await connectTo(tr.address, node)
  const opConn = await connectTo(tr.address, op)
  t.is(await nodeConn.call('test.ping'), 'pong')
  t.is(await opConn.call('test.whoami'), 'op')
  // The node took the oldest one's place; once it had authenticated, the operator found a free one.
  await waitFor(() => open(flood) === 7, { what: 'one more to make room' })
  t.regex(lines.join('\n'), /dropped the oldest for a newer one/)
  nodeConn.close()
  opConn.close()
})

test('admission: beyond maxConnections new connections are closed at once, and the log says why', async (t) => {
  const { tr, lines, port } = await server(t, { maxConnections: 3 })
  const a = await connectTo(tr.address, node)
  const b = await connectTo(tr.address, op)
  const waiting = await idle(t, port, 1, { from: '127.0.0.6' })
  const over = await idle(t, port, 1, { from: '127.0.0.7' })
  await waitFor(() => open(over) === 0, { what: 'the fourth connection to be closed' })
  t.is(open(waiting), 1)
  t.regex(lines.join('\n'), /refused a connection from 127\.0\.0\.7:\d+: 3 connections are open \(the limit\)/)
  b.close()
  await b.closed
  await waitFor(async () => await connectTo(tr.address, op).then((c) => { c.close(); return true }, () => false), { what: 'a connection once one closed' })
  t.is(await a.call('test.ping'), 'pong')
  a.close()
})

test('admission: refused handshakes are logged once per kind, then counted', async (t) => {
  const { tr, lines } = await server(t, { refusalLogIntervalMs: 60_000 })
  const outcomes: string[] = []
  for (let round = 0; round < 30; round++) {
    outcomes.push(...await Promise.all(Array.from({ length: 10 }, async () => await refusedUpgrade(tr.address))))
  }
  for (let i = 0; i < 20; i++) outcomes.push(await refusedUpgrade(tr.address, expired))
  t.deepEqual([...new Set(outcomes)], ['403'])
  t.deepEqual(lines.filter((l) => l.startsWith('refused')).map((l) => l.replace(/\d+\.\d+\.\d+\.\d+:\d+/, 'ADDR')), [
    'refused a connection from ADDR: no client certificate (origin requires mutual TLS)',
    'refused a connection from ADDR: certificate "old" refused: certificate has expired'
  ])
  await tr.stop()
  t.is(lines.at(-1), 'refused 318 more connections in the last 60 s: 299 no certificate, 19 expired')
})

test('admission: a webhook request is served under the handshake clock, and its idle connection is then closed quietly', async (t) => {
  const { tr, lines, port } = await server(t, { handshakeTimeoutMs: 800 })
  tr.route('POST', '/hooks/test', async (req) => ({ status: 202, body: `got ${req.body.length} bytes` }))
  const agent = new https.Agent({ keepAlive: true, ca: node.ca, checkServerIdentity: () => undefined })
  t.teardown(() => { agent.destroy() })
  let socket: net.Socket | undefined
  const answer = await new Promise<string>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method: 'POST', path: '/hooks/test', agent }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve(`${res.statusCode ?? 0} ${body.trim()}`))
    })
    req.on('socket', (s) => { socket = s })
    req.on('error', reject)
    req.end('hello')
  })
  t.is(answer, '202 got 5 bytes')
  await waitFor(() => socket?.destroyed, { what: 'the idle keep-alive connection to be closed' })
  t.deepEqual(lines.filter((l) => l.startsWith('refused')), [], 'not a refusal')
})
