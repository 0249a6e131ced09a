/**
 * The membership layer over an in-memory network: real gossip, real timers (fast), no
 * sockets. A hostile peer here is whoever calls `net.call` with a node's methods.
 */
import test from 'ava'
import { EventEmitter } from 'node:events'
import { OriginError } from '../../node/errors'
import { silentLogger, type Logger } from '../../node/log'
import { membership, type Member, type Membership } from '../../node/membership'
import type { Connection, Method, Transport } from '../../node/transport'
import { validator, type Check } from '../../node/validate'
import { waitFor } from '../helpers/wait'

const fast = { gossipIntervalMs: 20, suspectAfterMs: 300, deadAfterMs: 600, seedRetryMs: 100, leaveTimeoutMs: 100 }
const characteristics = { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: 1 }

class Net {
  private readonly nodes = new Map<string, Map<string, { method: Method, check: Check<unknown> }>>()
  readonly down = new Set<string>()
  readonly dialed: string[] = []
  /** Calls made, by method name. */
  readonly calls = new Map<string, number>()

  transport (address: string): Transport {
    const methods = new Map<string, { method: Method, check: Check<unknown> }>()
    this.nodes.set(address, methods)
    const connection = async (to: string): Promise<Connection> => {
      this.dialed.push(to)
      if (!this.nodes.has(to) || this.down.has(to) || this.down.has(address)) throw new OriginError('E_UNREACHABLE', `cannot connect to ${to}`)
      return { isOpen: true, call: async (name: string, payload: unknown) => await this.call(address, to, name, payload) } as unknown as Connection
    }
    return {
      address,
      start: async () => {},
      stop: async () => {},
      handle: (method) => { methods.set(method.name, { method, check: method.payload === undefined ? (p) => p : validator(method.payload, `payload of ${method.name}`) }) },
      route: () => {},
      connect: connection,
      peer: connection,
      setRevoked: () => {},
      traffic: () => undefined,
      events: new EventEmitter()
    }
  }

  /** What the transport does with a call: the method's payload schema, then its handler; values cross as copies. */
  async call (from: string, to: string, name: string, payload: unknown): Promise<any> {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1)
    if (this.down.has(to) || this.down.has(from)) throw new OriginError('E_UNREACHABLE', `cannot connect to ${to}`)
    const entry = this.nodes.get(to)?.get(name)
    if (entry === undefined) throw new OriginError('E_UNKNOWN_METHOD', `no method "${name}"`)
    const peer = { role: 'node' as const, cluster: 'test', name: 'node', serial: '01', remote: `${from.split(':')[0]}:40000` }
    const answer = await entry.method.handler(entry.check(structuredClone(payload)), { peer, signal: new AbortController().signal })
    return structuredClone(answer)
  }
}

function lines (): Logger & { all: string[] } {
  const all: string[] = []
  const log: Logger & { all: string[] } = { all, debug () {}, info: (m) => all.push(m), warn: (m) => all.push(m), error: (m) => all.push(m), child: () => log }
  return log
}

async function node (t: { teardown (fn: () => Promise<void>): void }, net: Net, id: string, address: string, seeds: string[] = [], log: Logger = silentLogger): Promise<Membership> {
  const m = membership({ seeds, ...fast })({ transport: net.transport(address), log, self: { id, address, characteristics } })
  t.teardown(async () => await m.stop())
  await m.start()
  return m
}

function entry (id: string, address: string, over: Partial<Member> = {}): Member {
  return { id, address, incarnation: Date.now(), heartbeat: 1, status: 'alive', hub: false, characteristics, ...over }
}

const HOSTILE = '127.66.66.66:7400'

test.serial('membership node: 50,000 frames each with a new `from` leave its bookkeeping bounded', async (t) => {
  const net = new Net()
  const a = await node(t, net, 'a', '127.0.0.2:7400')
  const started = Date.now()
  for (let i = 0; i < 50_000; i++) {
    const from = `x${i}`
    await net.call(HOSTILE, a.address, 'mesh.gossip', { from, table: { [from]: entry(from, `127.66.${i >> 8 & 255}.${i & 255}:7400`) } })
  }
  const rounds = Math.ceil((Date.now() - started) / fast.gossipIntervalMs) + 1
  t.is(a.reachable(Number.MAX_SAFE_INTEGER).size, 0, 'strangers are not contacts')
  t.deepEqual(Object.keys(a.table()), ['a'])
  t.true(net.dialed.length <= 16 * rounds, `${net.dialed.length} calls back to strangers in ${rounds} rounds`)
})

test.serial('membership node: ghosts heard from a hostile peer never become members; a real member that calls in is met', async (t) => {
  const net = new Net()
  const a = await node(t, net, 'a', '127.0.0.2:7400')
  const ghosts: Record<string, Member> = { evil: entry('evil', HOSTILE) }
  for (let i = 0; i < 990; i++) ghosts[`g${i}`] = entry(`g${i}`, `127.77.${i >> 8}.${i & 255}:7400`)
  await net.call(HOSTILE, a.address, 'mesh.gossip', { from: 'evil', table: ghosts })
  await node(t, net, 'b', '127.0.0.3:7400', [a.address])
  await waitFor(() => a.table().b?.status === 'alive', { what: 'a to meet b' })
  t.deepEqual(Object.keys(a.table()).sort(), ['a', 'b'])
  const ghostsDialed = new Set(net.dialed.filter((d) => d.startsWith('127.77.')))
  t.true(ghostsDialed.size <= 16, `${ghostsDialed.size} ghosts dialed of 990`)
})

test.serial('membership node: an incarnation poisoned by a third party does not keep a live member from refuting', async (t) => {
  const net = new Net()
  const a = await node(t, net, 'a', '127.0.0.2:7400')
  const b = await node(t, net, 'b', '127.0.0.3:7400', ['127.0.0.2:7400'])
  await waitFor(() => a.table().b?.status === 'alive' && b.table().a?.status === 'alive', { what: 'a and b to meet' })
  const real = a.table().b
  const from = { evil: entry('evil', HOSTILE) }
  const poisons = [
    { ...real, incarnation: 1e308, status: 'left' },
    { ...real, incarnation: Number.MAX_SAFE_INTEGER, status: 'left' },
    { ...real, incarnation: real.incarnation + 1e6, status: 'dead' },
    { ...real, status: 'left' },
    { ...real, incarnation: real.incarnation + 3, instances: { 'fake-0': { version: 'x', state: 'ready' } } }
  ]
  for (const poison of poisons) {
    await net.call(HOSTILE, a.address, 'mesh.gossip', { from: 'evil', table: { ...from, b: poison } }).catch(() => undefined)
  }
  t.not(a.table().b.status, 'left')
  const own = await waitFor(() => { const m = a.table().b; return m.status === 'alive' && m.instances === undefined && m.incarnation > real.incarnation + 3 ? m : undefined }, { what: 'b to refute on a' })
  t.true(own.incarnation <= real.incarnation + 16 + 1, `b's incarnation ${own.incarnation - real.incarnation} above its own`)
  t.deepEqual(Object.keys(a.table()).sort(), ['a', 'b'])
})

test.serial('membership node: a node back under a new id at a dead member\'s address replaces it', async (t) => {
  const net = new Net()
  const log = lines()
  const a = await node(t, net, 'a', '127.0.0.2:7400', [], log)
  const b = await node(t, net, 'b', '127.0.0.3:7400', ['127.0.0.2:7400'])
  await waitFor(() => a.table().b?.status === 'alive', { what: 'a to meet b' })
  net.down.add(b.address)
  await b.stop() // its goodbye is lost: as if killed
  await waitFor(() => a.table().b?.status === 'dead', { what: 'b to be dead on a' })
  net.down.delete('127.0.0.3:7400')
  await node(t, net, 'node-x1', '127.0.0.3:7400', ['127.0.0.2:7400'])
  await waitFor(() => a.table().b?.status === 'left' && a.table()['node-x1']?.status === 'alive', { what: 'b to be replaced' })
  t.true(log.all.some((l) => /b is left \(replaced: node-x1 answers at its address 127\.0\.0\.3:7400\)/.test(l)))
})

test.serial('membership node: an entry keyed by another id is refused, and a frame of 9,000 members gets a short error', async (t) => {
  const net = new Net()
  const a = await node(t, net, 'a', '127.0.0.2:7400')
  const twoAs = { evil: entry('evil', HOSTILE), x: entry('a', HOSTILE, { status: 'left', incarnation: Date.now() + 1000 }) }
  await t.throwsAsync(net.call(HOSTILE, a.address, 'mesh.gossip', { from: 'evil', table: twoAs }), { message: /keyed "x" but is member "a"/ })
  t.deepEqual(Object.keys(a.table()), ['a'])
  t.is(a.table().a.status, 'alive')
  const big: Record<string, unknown> = {}
  for (let i = 0; i < 9000; i++) big[`m${i}`] = { id: `m${i}`, bad: true }
  const err = await t.throwsAsync(net.call(HOSTILE, a.address, 'mesh.gossip', { from: 'm0', table: big }), { instanceOf: OriginError })
  t.true(JSON.stringify(err).length < 2000, `error of ${JSON.stringify(err).length} bytes`)
  const under: Record<string, unknown> = {}
  for (let i = 0; i < 999; i++) under[`m${i}`] = { id: `m${i}`, bad: true }
  const err2 = await t.throwsAsync(net.call(HOSTILE, a.address, 'mesh.gossip', { from: 'm0', table: under }), { instanceOf: OriginError })
  t.true(JSON.stringify(err2).length < 2000, `error of ${JSON.stringify(err2).length} bytes`)
})

test.serial('membership node: SWIM — a member cut off is dead on the others within the suspicion bounds; nobody else is suspected', async (t) => {
  const net = new Net()
  const log = lines()
  const a = await node(t, net, 'a', '127.0.0.2:7400', [], log)
  const others = [await node(t, net, 'b', '127.0.0.3:7400', [a.address]), await node(t, net, 'c', '127.0.0.4:7400', [a.address]), await node(t, net, 'd', '127.0.0.5:7400', [a.address])]
  await waitFor(() => [a, ...others].every((m) => Object.values(m.table()).filter((e) => e.status === 'alive').length === 4), { what: 'four members to meet' })
  const cutAt = Date.now()
  net.down.add('127.0.0.5:7400')
  await waitFor(() => [a, ...others.slice(0, 2)].every((m) => m.table().d.status === 'dead'), { what: 'd to be dead on a, b and c' })
  const took = Date.now() - cutAt
  t.true(took >= fast.suspectAfterMs, `dead after ${took} ms: never before the least suspicion timeout`)
  t.true(took < fast.deadAfterMs + 20 * fast.gossipIntervalMs + 1000, `dead after ${took} ms`)
  t.deepEqual(log.all.filter((l) => / [abc] is (suspect|dead)/.test(l)), [], 'no live member suspected')
  t.true(log.all.some((l) => /d is dead \(no answer for \d+\.\d s; suspect for/.test(l)) || log.all.some((l) => /d is dead \(no answer for \d+\.\d s; [bc] says so/.test(l)))
})

test.serial('membership node: between push-pulls an idle cluster sends no whole table, only pings', async (t) => {
  const net = new Net()
  const a = await node(t, net, 'a', '127.0.0.2:7400')
  await node(t, net, 'b', '127.0.0.3:7400', [a.address])
  await node(t, net, 'c', '127.0.0.4:7400', [a.address])
  await waitFor(() => Object.values(a.table()).filter((e) => e.status === 'alive').length === 3, { what: 'three members to meet' })
  net.calls.clear()
  const started = Date.now()
  await waitFor(() => Date.now() - started > 1000, { what: 'a second' })
  const periods = (Date.now() - started) / fast.gossipIntervalMs
  const whole = (net.calls.get('mesh.gossip') ?? 0) + (net.calls.get('mesh.join') ?? 0)
  const pings = net.calls.get('mesh.ping') ?? 0
  // A push-pull is due every pushPullIntervalMs (5 s by default) per node: at most one each in a second.
  t.true(whole <= 3, `${whole} whole-table exchanges in a second`)
  t.true(pings >= periods, `${pings} pings in ${periods.toFixed(0)} periods`)
})
