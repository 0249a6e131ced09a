/**
 * What a node measures of itself for `cluster.stats()`: the machine's CPU and memory, load,
 * free disk of the data dir, event-loop delay, mesh connections; and for each of its
 * instances CPU, memory of the whole instance (every process in it), restarts, uptime
 * and port. CPU percentages are rates: measured between this answer and an earlier
 * measurement at least `minWindowMs` old (the previous answer, when an operator watches),
 * or over a window of `windowMs` taken on the spot. Nothing is sampled between answers.
 *
 * @example
 *   const s = new StatsSampler({ dataDir, membership, supervisor, mesh, transport, proxy })
 *   s.start()
 *   await s.collect()   // NodeStats
 */
import { statfs } from 'node:fs/promises'
import os from 'node:os'
import { systemClock, type Clock } from '../clock'
import type { Membership } from '../membership'
import type { Supervisor } from '../supervisor/types'
import type { Transport } from '../transport/types'
import type { MeshCount } from './mesh'
import type { Proxy } from '../proxy/types'
import type { Health } from '../health/types'
import { USER_HZ } from '../procstat'

/** One instance, as stats shows it. Usage fields are absent while no process runs. */
export interface InstanceStats {
  instance: string
  service: string
  state: string
  /** CPU of all its processes, % of one core (200 = two cores busy). */
  cpuPercent?: number
  /** Resident memory of all its processes, MiB. */
  memoryMb?: number
  /** How many processes it has. */
  processes?: number
  restarts: number
  /** Since its current process started, while it runs. */
  uptimeMs?: number
  /** Its first port (PORT). */
  port?: number
}

/** A node that answered. */
export interface NodeStats {
  node: string
  address: string
  status: 'ok'
  /** When measured, ms since the epoch. */
  at: number
  /** The window the CPU percentages are measured over, ms. */
  windowMs: number
  /** The machine's CPU, all cores: 0 to 100. */
  cpuPercent: number
  cpus: number
  /** The node program's own CPU, % of one core. */
  nodeCpuPercent: number
  /** The machine's memory in use (total less available), MiB. */
  memoryUsedMb: number
  memoryTotalMb: number
  /** The node program's resident memory, MiB. */
  nodeRssMb: number
  /** Load average over 1, 5 and 15 minutes. */
  load: [number, number, number]
  /** Free space for the node on the data dir's filesystem, MiB (absent where it cannot be read). */
  diskFreeMb?: number
  diskTotalMb?: number
  dataDir: string
  /** How late the node's event loop ran timers over the last few seconds (health's `eventLoopWindowMs`), ms. */
  eventLoopDelayMs: { p50: number, p99: number, max: number }
  /** Open mesh connections: from other nodes, to other nodes (absent where it cannot be counted), and from operators. */
  meshConnections: { in: number, out?: number, operators: number }
  /** Membership gossip over the window, bytes per second each way (requests and answers). */
  gossipBytesPerSec: { sent: number, received: number }
  /** Requests this node's proxy refused at a service's admission limit (maxInFlight, maxKeys), by service, since it started. */
  admissionRefusals?: Record<string, number>
  instances: InstanceStats[]
}

/** A node that did not answer, and why. */
export interface UnreachableNode {
  node: string
  address: string
  status: 'unreachable'
  reason: string
}

export type NodeStatsRow = NodeStats | UnreachableNode

export interface StatsView {
  answeredBy: string
  at: number
  nodes: NodeStatsRow[]
}

export interface StatsInit {
  /** The shortest window a CPU rate is measured over; a shorter one is mostly noise. @default 200 */
  minWindowMs?: number
  /** The window measured on the spot when no earlier measurement is recent. @default 500 */
  windowMs?: number
  /** An earlier measurement older than this is not used: the rate would hide what happens now. @default 60000 */
  maxWindowMs?: number
}

export const statsDefaults = { minWindowMs: 200, windowMs: 500, maxWindowMs: 60_000 } as const

export interface StatsComponents {
  dataDir: string
  membership: Pick<Membership, 'id' | 'address' | 'table'>
  supervisor: Pick<Supervisor, 'report' | 'usage'>
  mesh: MeshCount
  /** This node's membership traffic is read from its transport's counters. */
  transport: Pick<Transport, 'traffic'>
  /** Requests its proxy refused at admission limits; none counted without one. */
  proxy?: Pick<Proxy, 'admissionRefusals'>
  /** When a measurement was made, and instances' uptimes (their start is on it too). @default systemClock */
  clock?: Clock
  /** The event loop delay, as the health layer measures it; zeros without one. */
  health?: Pick<Health, 'loopDelay'>
}

/** What a rate needs from one moment. */
interface Snapshot {
  at: number
  cpuBusy: number
  cpuTotal: number
  /** process.cpuUsage(), µs. */
  nodeCpu: number
  /** CPU ticks by `instance@startedAt` (a restart starts a new count). */
  ticks: Map<string, number>
  /** Bytes of membership traffic (mesh.gossip, mesh.join, mesh.ping and mesh.ping-req calls) so far, each way. */
  gossip: { sent: number, received: number }
  usage: Record<string, { pids: number[], rssKb: number, cpuTicks: number }>
}

/** The membership layer's calls: what "gossip traffic" is. */
const GOSSIP_METHODS = ['mesh.gossip', 'mesh.join', 'mesh.ping', 'mesh.ping-req']

const round1 = (n: number): number => Math.round(n * 10) / 10

export class StatsSampler {
  private readonly o: Required<StatsInit>
  private recent: Snapshot[] = []

  constructor (private readonly c: StatsComponents, init: StatsInit = {}) {
    this.o = { ...statsDefaults, ...init }
  }

  /** This node's stats now. */
  async collect (): Promise<NodeStats> {
    let now = await this.snapshot()
    let base = this.baseFor(now)
    if (base === undefined) {
      // Nothing recent enough: measure a window now (or finish one a concurrent answer began).
      const young = this.recent.find((s) => now.at - s.at < this.o.minWindowMs)
      if (young === undefined) this.keep(now)
      // Real time, as the snapshots' `at`: the CPU counters it measures run on it.
      await new Promise((resolve) => setTimeout(resolve, young === undefined ? this.o.windowMs : this.o.minWindowMs - (now.at - young.at)))
      now = await this.snapshot()
      base = this.baseFor(now) ?? now
    }
    this.keep(now)
    const window = Math.max(1, now.at - base.at)
    const mem = process.memoryUsage()
    const disk = await statfs(this.c.dataDir).catch(() => undefined)
    const self = this.c.membership.table()[this.c.membership.id]
    return {
      node: this.c.membership.id,
      address: self?.address ?? this.c.membership.address,
      status: 'ok',
      at: (this.c.clock ?? systemClock).now(),
      windowMs: Math.round(window),
      cpuPercent: round1(now.cpuTotal > base.cpuTotal ? 100 * (now.cpuBusy - base.cpuBusy) / (now.cpuTotal - base.cpuTotal) : 0),
      cpus: os.cpus().length,
      nodeCpuPercent: round1(100 * (now.nodeCpu - base.nodeCpu) / 1000 / window),
      memoryUsedMb: Math.round((os.totalmem() - os.freemem()) / 2 ** 20),
      memoryTotalMb: Math.round(os.totalmem() / 2 ** 20),
      nodeRssMb: round1(mem.rss / 2 ** 20),
      load: os.loadavg().map((l) => Math.round(l * 100) / 100) as [number, number, number],
      ...(disk === undefined ? {} : { diskFreeMb: Math.round(disk.bavail * disk.bsize / 2 ** 20), diskTotalMb: Math.round(disk.blocks * disk.bsize / 2 ** 20) }),
      dataDir: this.c.dataDir,
      eventLoopDelayMs: this.loopDelay(),
      meshConnections: await this.c.mesh.count(),
      gossipBytesPerSec: {
        sent: Math.round((now.gossip.sent - base.gossip.sent) * 1000 / window),
        received: Math.round((now.gossip.received - base.gossip.received) * 1000 / window)
      },
      admissionRefusals: this.c.proxy?.admissionRefusals() ?? {},
      instances: this.instances(now, base, window)
    }
  }

  private instances (now: Snapshot, base: Snapshot, window: number): InstanceStats[] {
    const at = (this.c.clock ?? systemClock).now()
    return this.c.supervisor.report().map((r) => {
      const s: InstanceStats = { instance: r.instance, service: r.service, state: r.status.state, restarts: r.status.restarts }
      const running = r.status.startedAt !== undefined && ['starting', 'ready', 'unhealthy', 'paused', 'stopping'].includes(r.status.state)
      if (running) s.uptimeMs = at - r.status.startedAt!
      if (r.port > 0) s.port = r.port
      const u = now.usage[r.instance]
      if (u !== undefined && u.pids.length > 0) {
        s.memoryMb = round1(u.rssKb / 1024)
        s.processes = u.pids.length
        const key = `${r.instance}@${r.status.startedAt ?? ''}`
        const before = base.ticks.get(key)
        // A process that exits without its parent reaping it takes its ticks along: never below 0.
        if (before !== undefined && base !== now) s.cpuPercent = round1(Math.max(0, (now.ticks.get(key)! - before) / USER_HZ * 1000 / window * 100))
      }
      return s
    })
  }

  private loopDelay (): NodeStats['eventLoopDelayMs'] {
    return this.c.health?.loopDelay() ?? { p50: 0, p99: 0, max: 0 }
  }

  /** The newest kept snapshot old enough, and not too old, to measure rates against. */
  private baseFor (now: Snapshot): Snapshot | undefined {
    return this.recent.find((s) => now.at - s.at >= this.o.minWindowMs && now.at - s.at <= this.o.maxWindowMs)
  }

  /**
   * Newest first, each at least half a minimum window newer than the one kept before it: a
   * snapshot closer to the newest kept is not kept, so the newest ages into a base. However
   * often operators ask, a window stays between one and about two minimum windows long, and
   * an instance started a moment ago gets its rate once a snapshot with it is old enough.
   */
  private keep (s: Snapshot): void {
    const newest = this.recent[0]
    if (newest !== undefined && s.at - newest.at < this.o.minWindowMs / 2) return
    this.recent = [s, ...this.recent.filter((r) => s.at - r.at <= this.o.maxWindowMs)].slice(0, 8)
  }

  private async snapshot (): Promise<Snapshot> {
    const usage = await this.c.supervisor.usage?.() ?? {}
    // When the instances' ticks were read: their rates are over the time between two reads.
    const at = performance.now()
    let busy = 0
    let total = 0
    for (const cpu of os.cpus()) {
      const t = cpu.times
      busy += t.user + t.nice + t.sys + t.irq
      total += t.user + t.nice + t.sys + t.irq + t.idle
    }
    const cpu = process.cpuUsage()
    const ticks = new Map<string, number>()
    for (const r of this.c.supervisor.report()) {
      const u = usage[r.instance]
      if (u !== undefined) ticks.set(`${r.instance}@${r.status.startedAt ?? ''}`, u.cpuTicks)
    }
    const gossip = { sent: 0, received: 0 }
    for (const m of GOSSIP_METHODS) {
      const t = this.c.transport.traffic(m)
      if (t !== undefined) { gossip.sent += t.sent; gossip.received += t.received }
    }
    return { at, cpuBusy: busy, cpuTotal: total, nodeCpu: cpu.user + cpu.system, ticks, usage, gossip }
  }
}
