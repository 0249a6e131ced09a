/**
 * A simulated network for the membership's RPC: each node gets a `Transport` whose unary
 * calls are delivered on the virtual clock after a latency, checked against the method's
 * payload schema as the real transport does, lost at random or by a partition, one-way
 * link or crash, and counted (messages and msgpack bytes, each way, per node). Only what
 * the membership uses is there: `handle`, `peer(address).call`, `address`. A crashed
 * node's machine is gone: calls to it get no answer (the caller times out), the harder
 * case for a detector than a refused connection.
 */
import { EventEmitter } from 'node:events'
import { Packr } from 'msgpackr'
import { OriginError } from '../node/errors'
import type { Connection, Method, Transport } from '../node/transport'
import { validator, type Check } from '../node/validate'
import type { Member } from '../node/membership'
import type { VirtualClock } from './clock'

export interface NetworkOptions {
  /** One-way latency: base plus up to `jitterMs` more, uniformly. */
  latencyMs: number
  jitterMs: number
  /** Chance each message is lost, on every link. */
  loss: number
}

export interface Traffic { sentMsgs: number, sentBytes: number, receivedMsgs: number, receivedBytes: number }

interface SimNode {
  methods: Map<string, { method: Method, check: Check<unknown> }>
  traffic: Traffic
  crashed: boolean
  /** Extra chance of loss on every message to or from this node. */
  loss: number
  /** Extra time this node takes to handle each call (an overloaded machine). */
  slowMs: number
  side: number
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })
const memberBytes = new WeakMap<Member, number>()
const checks = new Map<string, Check<unknown>>()
/** Calls here are never cancelled: one signal for all. */
const NEVER = new AbortController().signal

export class SimNetwork {
  private readonly nodes = new Map<string, SimNode>()
  /** Links cut one way, `from>to`. */
  private readonly cut = new Set<string>()
  private partitioned = false

  constructor (private readonly clock: VirtualClock, private readonly random: () => number, readonly o: NetworkOptions) {}

  transport (address: string): Transport {
    const node: SimNode = { methods: new Map(), traffic: { sentMsgs: 0, sentBytes: 0, receivedMsgs: 0, receivedBytes: 0 }, crashed: false, loss: 0, slowMs: 0, side: 0 }
    this.nodes.set(address, node)
    const connection = async (to: string): Promise<Connection> => {
      if (!this.nodes.has(to)) throw new OriginError('E_UNREACHABLE', `cannot connect to ${to}: connection refused`)
      return { isOpen: true, call: async (name: string, payload: unknown, opts?: { timeoutMs?: number }) => await this.call(address, to, name, payload, opts?.timeoutMs ?? 10_000) } as unknown as Connection
    }
    return {
      address,
      start: async () => {},
      stop: async () => {},
      handle: (method) => { node.methods.set(method.name, { method, check: checkFor(method) }) },
      route: () => {},
      connect: connection,
      peer: connection,
      setRevoked: () => {},
      traffic: () => undefined,
      events: new EventEmitter()
    }
  }

  traffic (address: string): Traffic { return { ...this.get(address).traffic } }

  crash (address: string): void { this.get(address).crashed = true }
  setLoss (address: string, loss: number): void { this.get(address).loss = loss }
  setSlow (address: string, ms: number): void { this.get(address).slowMs = ms }
  cutLink (from: string, to: string): void { this.cut.add(`${from}>${to}`) }
  /** Split the nodes into sides (by `sideOf`): messages between sides are lost until `heal`. */
  partition (sideOf: (address: string) => number): void {
    for (const [a, n] of this.nodes) n.side = sideOf(a)
    this.partitioned = true
  }

  heal (): void {
    this.partitioned = false
    this.cut.clear()
  }

  private get (address: string): SimNode {
    const n = this.nodes.get(address)
    if (n === undefined) throw new Error(`no simulated node at ${address}`)
    return n
  }

  private delivers (from: SimNode, to: SimNode, fromAddress: string, toAddress: string): boolean {
    if (from.crashed || to.crashed) return false
    if (this.partitioned && from.side !== to.side) return false
    if (this.cut.size > 0 && this.cut.has(`${fromAddress}>${toAddress}`)) return false
    const loss = 1 - (1 - this.o.loss) * (1 - from.loss) * (1 - to.loss)
    return loss === 0 || this.random() >= loss
  }

  private latency (): number {
    return this.o.latencyMs + this.random() * this.o.jitterMs
  }

  private async call (fromAddress: string, toAddress: string, name: string, payload: unknown, timeoutMs: number): Promise<unknown> {
    const from = this.get(fromAddress)
    const to = this.get(toAddress)
    if (from.crashed) throw new OriginError('E_CLOSED', 'this node crashed')
    return await new Promise((resolve, reject) => {
      let settled = false
      const timer = this.clock.after(timeoutMs, () => { if (!settled) { settled = true; reject(new OriginError('E_TIMEOUT', `${name} to ${toAddress}: no answer within ${timeoutMs} ms`)) } })
      const finish = (fn: () => void): void => { if (!settled) { settled = true; timer.cancel(); fn() } }
      const bytes = sizeOf(payload)
      from.traffic.sentMsgs++
      from.traffic.sentBytes += bytes
      if (!this.delivers(from, to, fromAddress, toAddress)) return
      this.clock.after(this.latency() + to.slowMs, () => {
        if (to.crashed) return
        to.traffic.receivedMsgs++
        to.traffic.receivedBytes += bytes
        const answer = (outcome: { ok: true, value: unknown } | { ok: false, err: unknown }): void => {
          if (to.crashed) return
          const size = outcome.ok ? sizeOf(outcome.value) : 64
          to.traffic.sentMsgs++
          to.traffic.sentBytes += size
          if (!this.delivers(to, from, toAddress, fromAddress)) return
          this.clock.after(this.latency(), () => {
            if (from.crashed) return
            from.traffic.receivedMsgs++
            from.traffic.receivedBytes += size
            finish(() => { if (outcome.ok) resolve(outcome.value); else reject(outcome.err) })
          })
        }
        const entry = to.methods.get(name)
        if (entry === undefined || entry.method.kind !== 'unary') { answer({ ok: false, err: new OriginError('E_UNKNOWN_METHOD', `no method "${name}"`) }); return }
        const peer = { role: 'node' as const, cluster: 'sim', name: 'node', serial: '01', remote: `${fromAddress.split(':')[0]}:40000` }
        void (async () => await entry.method.handler(entry.check(payload), { peer, signal: NEVER }))()
          .then((value) => answer({ ok: true, value }), (err) => answer({ ok: false, err }))
      })
    })
  }
}

function checkFor (method: Method): Check<unknown> {
  if (method.payload === undefined) return (p) => p
  const key = `${method.name}:${JSON.stringify(method.payload)}`
  let check = checks.get(key)
  if (check === undefined) {
    check = validator(method.payload, `payload of ${method.name}`)
    checks.set(key, check)
  }
  return check
}

/**
 * The msgpack size of a message. Member entries are values (never changed once made), so
 * each one's size is computed once: a push-pull of a thousand entries costs a sum.
 */
export function sizeOf (value: unknown): number {
  if (value === null || typeof value !== 'object') return packr.pack(value).length
  if (isMember(value)) {
    let n = memberBytes.get(value)
    if (n === undefined) { n = packr.pack(value).length; memberBytes.set(value, n) }
    return n
  }
  let total = 5
  for (const [k, v] of Object.entries(value)) total += k.length + 2 + sizeOf(v)
  return total
}

function isMember (v: object): v is Member {
  return 'incarnation' in v && 'characteristics' in v
}
