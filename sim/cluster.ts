/**
 * N nodes of the real membership code (node/membership) on one simulated network and one
 * virtual clock. What each node believes of each member is followed through the lines it
 * logs (`x is dead (...)`, `x at a:p is alive (...)`), one line per change, so watching a
 * thousand nodes costs nothing per message.
 */
import type { Logger } from '../node/log'
import { membership, type Membership, type MembershipInit, type MemberStatus } from '../node/membership'
import { seededRandom, type VirtualClock } from './clock'
import type { SimNetwork } from './network'

export interface SimMember {
  id: string
  address: string
  m: Membership
  startedAt: number
  crashedAt?: number
  /** What this node believes of every member it logged about: id -> status. */
  view: Map<string, MemberStatus>
  /** When this node first held each member dead (or left). */
  deadAt: Map<string, number>
}

/** A change of belief: `observer` now holds `id` as `status`, at virtual time `at`. */
export interface Belief { observer: string, id: string, status: MemberStatus, at: number }

const CHANGE = /^(\S+) (?:at \S+ )?is (alive|suspect|dead|left)\b/

export class SimCluster {
  readonly members = new Map<string, SimMember>()
  private next = 0
  private readonly listeners: Array<(b: Belief) => void> = []

  constructor (
    private readonly clock: VirtualClock,
    private readonly net: SimNetwork,
    private readonly init: Omit<MembershipInit, 'seeds'>,
    private readonly seed: number
  ) {}

  onBelief (fn: (b: Belief) => void): void { this.listeners.push(fn) }

  /** Live (not crashed) members. */
  live (): SimMember[] { return [...this.members.values()].filter((x) => x.crashedAt === undefined) }

  /** Start a new node, seeded with up to three live ones; resolves once it joined. */
  async add (): Promise<SimMember> {
    const i = this.next++
    const id = `n${String(i).padStart(4, '0')}`
    const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7400`
    const seeds = this.live().slice(0, 3).map((x) => x.address)
    const view = new Map<string, MemberStatus>()
    const deadAt = new Map<string, number>()
    const log = this.logger(id, view, deadAt)
    const m = membership({ ...this.init, seeds })({
      transport: this.net.transport(address),
      log,
      self: { id, address, characteristics: { cpus: 2, memoryMb: 2048, arch: 'x64', labels: {}, startedAt: this.clock.now() } },
      scheduler: this.clock,
      random: seededRandom(this.seed * 7919 + i)
    })
    const x: SimMember = { id, address, m, startedAt: this.clock.now(), view, deadAt }
    this.members.set(id, x)
    await m.start()
    return x
  }

  /** The machine under `id` is gone: no answer, no timer of its runs again. */
  crash (id: string): void {
    const x = this.members.get(id)
    if (x === undefined || x.crashedAt !== undefined) return
    x.crashedAt = this.clock.now()
    this.net.crash(x.address)
    // Nothing it sends is delivered any more (its goodbye neither): stopping it only
    // keeps its timers from spending the simulation's time.
    void x.m.stop()
  }

  /** Members alive in every live node's view (and each live node in every view): converged. */
  converged (): boolean {
    const live = this.live()
    return live.every((x) => live.every((y) => y.id === x.id || x.view.get(y.id) === 'alive'))
  }

  private logger (observer: string, view: Map<string, MemberStatus>, deadAt: Map<string, number>): Logger {
    const seen = (msg: string): void => {
      const match = CHANGE.exec(msg)
      if (match === null) return
      const status = match[2] as MemberStatus
      view.set(match[1], status)
      if ((status === 'dead' || status === 'left') && !deadAt.has(match[1])) deadAt.set(match[1], this.clock.now())
      else if (status === 'alive') deadAt.delete(match[1])
      const b = { observer, id: match[1], status, at: this.clock.now() }
      for (const fn of this.listeners) fn(b)
    }
    const log: Logger = { debug () {}, info: seen, warn () {}, error () {}, child: () => log }
    return log
  }
}
