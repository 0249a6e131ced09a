/**
 * The transport runs on its clock component: call deadlines, handshake limits and refusal
 * summaries happen when the clock's time passes them, not when real time does. Shown on a
 * VirtualClock, with the in-memory transport for calls and real loopback sockets for the
 * admission limit.
 */
import test from 'ava'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import net, { type Socket } from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../node/clock/virtual'
import { OriginError } from '../node/errors'
import { loadIdentity } from '../node/keys'
import { silentLogger, type Logger } from '../node/log'
import type { Method } from '../node/transport'
import { Admission } from '../node/transport/admission'
import { DeadlineTimer } from '../node/transport/deadlines'
import { RefusalLog } from '../node/transport/refusals'
import { StreamClient } from '../node/transport/stream'
import { memoryNetwork } from '../plugins/transport-memory'
import { makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const START = 1_700_000_000_000

let dir = ''
let identity = { ca: '', cert: '', key: '', cluster: '' }

test.before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'origin-transport-clock-'))
  await makeKeys(dir, 'test')
  const id = await loadIdentity({ keys: dir })
  identity = { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

/** A method that never answers: only a deadline ends a call to it. */
const silent: Method = { kind: 'unary', name: 'test.silent', role: 'node', handler: async () => await new Promise(() => {}) }

/** How a promise ended so far: pending, or the code it failed with. */
function watch (p: Promise<unknown>): { state: string } {
  const s = { state: 'pending' }
  p.then(() => { s.state = 'answered' }, (err) => { s.state = err instanceof OriginError ? err.code : String(err) })
  return s
}

test('transport clock: a call times out when virtual time passes its deadline, and not before, however long real time takes', async (t) => {
  const clock = new VirtualClock(START)
  const mem = memoryNetwork()
  const server = mem.transport({ listen: 'mem-1:7400' })({ identity, log: silentLogger, clock })
  const client = mem.transport({ listen: 'mem-2:7400', callTimeoutMs: 3000 })({ identity, log: silentLogger, clock })
  server.handle(silent)
  await server.start()
  await client.start()
  t.teardown(async () => { await client.stop(); await server.stop() })
  const conn = await client.connect(server.address)
  const short = watch(conn.call('test.silent', undefined, { timeoutMs: 1000 }))
  const byDefault = watch(conn.call('test.silent'))
  // Real time passes (the request reaches the server and waits there); virtual time does not.
  await new Promise((resolve) => setTimeout(resolve, 1200))
  t.deepEqual([short.state, byDefault.state], ['pending', 'pending'], 'no virtual time has passed')
  await clock.runUntil(START + 999)
  t.is(short.state, 'pending', '1 ms before its deadline')
  await clock.runUntil(START + 1000)
  await waitFor(() => short.state !== 'pending', { what: 'the 1 s call to end' })
  t.is(short.state, 'E_TIMEOUT')
  t.is(byDefault.state, 'pending', 'the call with the transport\'s 3 s default still waits')
  await clock.runUntil(START + 2999)
  t.is(byDefault.state, 'pending')
  await clock.runUntil(START + 3000)
  await waitFor(() => byDefault.state !== 'pending', { what: 'the default call to end' })
  t.is(byDefault.state, 'E_TIMEOUT')
  t.true(conn.isOpen, 'a timeout fails the call, not the connection')
})

test('transport clock: a connection that does not authenticate is closed when virtual time passes the handshake limit', async (t) => {
  const clock = new VirtualClock(START)
  const refused: string[] = []
  const admission = new Admission({ handshakeTimeoutMs: 5000, maxUnauthenticated: 10, maxUnauthenticatedPerAddress: 10 }, (_s, kind) => refused.push(kind), clock)
  const server = net.createServer((socket) => admission.admit(socket))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => { admission.stop(); await new Promise((resolve) => server.close(resolve)) })
  const port = (server.address() as net.AddressInfo).port
  const socket: Socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  t.teardown(() => { socket.destroy() })
  let closed = false
  socket.once('close', () => { closed = true })
  await waitFor(() => admission.size === 1, { what: 'the connection to be admitted' })
  await clock.runUntil(START + 4999)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.false(closed, 'still open 1 ms before the limit')
  t.is(admission.size, 1)
  await clock.runUntil(START + 5000)
  await waitFor(() => closed, { what: 'the server to close it' })
  t.deepEqual(refused, ['handshake timeout'])
  t.is(admission.size, 0)
})

test('transport clock: refusals are summed up once per interval of virtual time', async (t) => {
  const clock = new VirtualClock(START)
  const lines: string[] = []
  const log: Logger = { debug () {}, info () {}, warn: (m) => lines.push(m), error: (m) => lines.push(m), child: () => log }
  const refusals = new RefusalLog(log, 10_000, clock)
  t.teardown(() => { refusals.stop() })
  refusals.refused('no certificate', 'first')
  refusals.refused('no certificate', 'second')
  await clock.runUntil(START + 9999)
  t.deepEqual(lines, ['first'], 'no summary before the interval ends')
  await clock.runUntil(START + 10_000)
  t.deepEqual(lines, ['first', 'refused 1 more connection in the last 10 s: 1 no certificate'])
  await clock.runUntil(START + 20_000)
  t.false(refusals.active, 'a quiet interval: the next refusal is logged in full')
})

test('transport clock: the deadline timer wakes when virtual time reaches the earliest deadline, and only then', async (t) => {
  const clock = new VirtualClock(START)
  const due = new Map([['a', START + 300], ['b', START + 100]])
  const expired: Array<[string, number]> = []
  const timer = new DeadlineTimer({
    expire: (now) => {
      let next = Infinity
      for (const [k, at] of due) { if (at <= now) { due.delete(k); expired.push([k, now]) } else next = Math.min(next, at) }
      return next
    }
  }, clock)
  t.teardown(() => { timer.stop() })
  t.is(timer.now(), START, 'deadlines are read from the virtual clock')
  timer.added(START + 300)
  timer.added(START + 100)
  await clock.runUntil(START + 99)
  t.deepEqual(expired, [])
  await clock.runUntil(START + 100)
  t.deepEqual(expired, [['b', START + 100]])
  await clock.runUntil(START + 299)
  t.is(expired.length, 1)
  await clock.runUntil(START + 300)
  t.deepEqual(expired, [['b', START + 100], ['a', START + 300]])
})

test('transport clock: a stream that gets no TLS answer fails when virtual time passes its timeout', async (t) => {
  const clock = new VirtualClock(START)
  // Accepts TCP and never speaks TLS: only the client's timeout ends the wait.
  const mute = net.createServer(() => {})
  mute.listen(0, '127.0.0.1')
  await once(mute, 'listening')
  const sockets = new Set<Socket>()
  mute.on('connection', (s) => { sockets.add(s); s.on('error', () => {}) })
  t.teardown(async () => { for (const s of sockets) s.destroy(); await new Promise((resolve) => mute.close(resolve)) })
  const client = new StreamClient(identity, { timeoutMs: 3000, clock })
  const opening = watch(client.open(`127.0.0.1:${(mute.address() as net.AddressInfo).port}`, { instance: 'x' }))
  await waitFor(() => sockets.size === 1, { what: 'the TCP connection' })
  await new Promise((resolve) => setTimeout(resolve, 100))
  await clock.runUntil(START + 2999)
  t.is(opening.state, 'pending', 'no virtual time past the timeout yet')
  await clock.runUntil(START + 3000)
  await waitFor(() => opening.state !== 'pending', { what: 'the open to fail' })
  t.is(opening.state, 'E_TIMEOUT')
})
