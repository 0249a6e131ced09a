/**
 * supervisor: makes this node run what the scheduler assigns it. Whenever the spec, the
 * members or the hubs change it recomputes the schedule (a pure function: every node gets
 * the same answer) and reconciles: the Reconciler below gathers what it knows, asks the
 * pure plan (plan.ts) what to do, and hands the actions to the executor (executor.ts). It
 * starts what is assigned here, stops what is not, replaces changed instances one at a
 * time across the cluster (the next waits until the previous is ready on the new version),
 * hands a singleton over only once its previous node says it stopped, and pauses, stops or
 * keeps everything below `minNodes` as the spec says. It tells the cluster what it runs
 * through the member table.
 *
 * The parts: the quorum and the watchdog that fence singletons (fence-clock.ts), code and
 * images for what may start (code-prepare.ts), the executor, and the instances themselves
 * (launch.ts, process.ts). Its contract (interface, Init, Components, events) is types.ts;
 * runtimes, the schedule function and the clock are components with defaults, so the
 * assembly can replace them.
 *
 * @example
 *   const s = supervisor({ dataDir })({ spec, membership, hubs, api, state, log })
 *   s.report()   // this node's instances with status, restarts, uptime
 */
import { EventEmitter } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { sleep, systemClock, type Clock } from '../clock'
import { errorMessage, OriginError } from '../errors'
import { builtinRuntimes } from '../runtime/builtin'
import type { ImageRuntime, Runtime } from '../runtime/contract'
import { dockerSocket } from '../runtime/docker'
import { schedule as builtinSchedule, serviceOfInstance, type Phase, type Schedule, type ScheduleFn } from '../scheduler'
import { CodeCache } from './code'
import { CodePreparer } from './code-prepare'
import { endLeftovers, groupContainment, probeContainment, type Containment } from './contain'
import { Executor } from './executor'
import { FenceClock } from './fence-clock'
import { logPathOf, type LaunchContext } from './launch'
import { successors } from './plan'
import { supervisorDefaults } from './policy'
import { PortBook } from './ports'
import { reconcileAssigned } from './reconcile-pass'
import { reportOf } from './report'
import type { Usage } from './procfs'
import type { InstanceReport, Supervisor, SupervisorComponents, SupervisorEvents, SupervisorInit } from './types'
import { instanceUsers, type InstanceUsers } from './users'

export type { InstanceEvent, InstanceReport, ReportStatus, Supervisor, SupervisorComponents, SupervisorEvents, SupervisorInit } from './types'

export function supervisor (init: SupervisorInit) {
  return (c: SupervisorComponents): Supervisor => new Reconciler(init, c)
}

/** How long an operator's restart waits for a start or stop under way on the instance to end. */
const restartSettleMs = 30_000

class Reconciler implements Supervisor {
  readonly events = new EventEmitter<SupervisorEvents>()
  private readonly clock: Clock
  private readonly ports: PortBook
  private readonly engine: ImageRuntime
  private readonly schedule: ScheduleFn
  private readonly code: CodePreparer
  private readonly fence: FenceClock
  private readonly x: Executor
  private processes?: Runtime
  private containment: Containment = groupContainment()
  private users?: InstanceUsers
  private sched?: Schedule
  private phase?: Phase
  private running = false
  private pass?: Promise<void>
  private again = false
  private viewKey = ''
  private readonly onView = (): void => {
    const key = this.keyOfView()
    if (key !== this.viewKey) { this.viewKey = key; this.kick() }
  }

  private readonly onSpec = (): void => { this.kick() }

  constructor (private readonly init: SupervisorInit, private readonly c: SupervisorComponents) {
    this.clock = c.clock ?? systemClock
    this.ports = new PortBook(join(init.dataDir, 'ports.json'))
    this.engine = (c.runtimes?.container ?? builtinRuntimes.container)({ socket: dockerSocket(init.dockerSocket), dataDir: init.dataDir, nodeId: c.membership.id, log: c.log, clock: this.clock })
    this.schedule = c.schedule ?? builtinSchedule
    this.code = new CodePreparer(new CodeCache(init.dataDir, c.membership.id, c.log, (b) => this.events.emit('build', b), this.clock), this.engine)
    this.x = new Executor({ clock: this.clock, log: c.log, membership: c.membership, state: c.state, events: this.events, launchContext: () => this.launchContext(), running: () => this.running, kick: () => this.kick() })
    this.fence = new FenceClock({
      fenceAfterMs: init.fenceAfterMs ?? supervisorDefaults.fenceAfterMs,
      clock: this.clock,
      membership: c.membership,
      lease: c.lease,
      log: c.log,
      watching: () => this.x.singletonAtStake(this.c.spec.current()?.spec.services ?? {}),
      tick: () => this.kick(),
      lapsed: (ids, why) => {
        for (const id of ids) {
          const i = this.x.instances.get(id)
          if (i === undefined || this.x.busy.has(id)) continue
          this.x.noteFenced(id)
          void this.x.retire(i, why, true)
        }
      }
    })
  }

  current (): Schedule | undefined { return this.sched }
  get nodeId (): string { return this.c.membership.id }

  async restart (instance: string): Promise<void> {
    // A start, stop or restart under way is let finish first (an operator restarting right
    // after a deploy, or twice at once, means "once more from now on"), then it is judged afresh.
    const until = this.clock.now() + restartSettleMs
    while (this.x.busy.has(instance)) {
      if (this.clock.now() >= until) throw new OriginError('E_NOT_READY', `${instance} is still being started or stopped on ${this.nodeId} after ${restartSettleMs / 1000} s; try again`, { instance, node: this.nodeId })
      await sleep(this.clock, 100)
    }
    const inst = this.x.instances.get(instance)
    if (inst === undefined) throw new OriginError('E_NOT_FOUND', `${instance} does not run on ${this.nodeId}`, { instance, node: this.nodeId })
    this.x.busy.add(instance) // reconcile leaves it alone meanwhile
    this.c.log.info(`restarting ${instance} in place (operator)`)
    try {
      const stopped = inst.proc.stop()
      inst.proc.start() // while stopping: starts again once it has exited
      await stopped
    } finally {
      this.x.busy.delete(instance)
      this.kick()
    }
  }

  placement (service: string): string | undefined {
    const p = this.c.spec.current()?.spec.services[service]?.placement
    return p === undefined ? undefined : p.kind === 'replicas' ? `replicas ${p.count ?? '?'}` : p.kind
  }

  uidOf (instance: string): number | undefined {
    return this.users?.recorded(serviceOfInstance(instance))
  }

  report (): InstanceReport[] {
    return reportOf(this.c.membership.id, this.x.instances.values(), this.x.waiting, (id) => logPathOf(this.init.dataDir, id))
  }

  async usage (): Promise<Record<string, Usage>> {
    const all = await Promise.all([...this.x.instances.values()].map(async (i) => [i.assignment.instance, await i.proc.usage()] as const))
    return Object.fromEntries(all.filter((e): e is readonly [string, Usage] => e[1] !== undefined))
  }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    await mkdir(join(this.init.dataDir, 'logs'), { recursive: true })
    // Said once, at start: what this node can guarantee about processes outliving instances.
    this.containment = this.init.containment ?? await probeContainment()
    this.c.log[this.containment.pidNamespace ? 'info' : 'warn'](this.containment.detail)
    this.processes = (this.c.runtimes?.process ?? builtinRuntimes.process)({ containment: this.containment, recordDir: join(this.init.dataDir, 'run') })
    // A previous run of this node (same data dir) that died hard may have left instances behind.
    for (const line of await endLeftovers(join(this.init.dataDir, 'run'), this.c.log)) this.c.log.warn(line)
    for (const line of await this.engine.endLeftovers()) this.c.log.warn(line)
    if (this.init.instanceUids !== false) this.users = await instanceUsers({ containment: this.containment, dataDir: this.init.dataDir, range: this.init.instanceUids, secretsDir: this.init.secretsDir, log: this.c.log })
    // Before anything can start: a singleton is tracked by the watchdog from its first run.
    await this.fence.start()
    this.c.spec.events.on('applied', this.onSpec)
    this.c.membership.events.on('change', this.onView)
    this.c.hubs.events.on('change', this.onView)
    this.kick()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.fence.stopClock()
    this.c.spec.events.off('applied', this.onSpec)
    this.c.membership.events.off('change', this.onView)
    this.c.hubs.events.off('change', this.onView)
    await this.pass
    await this.x.stopAll(this.successors(), () => this.c.spec.current()?.spec.services ?? {})
    await this.engine.stop()
    await this.fence.stopDog()
    this.users?.close()
  }

  /** What an instance is made with: known once start() has probed the containment and made the runtimes. */
  private launchContext (): LaunchContext {
    return {
      dataDir: this.init.dataDir,
      secretsDir: this.init.secretsDir,
      logMaxBytes: this.init.logMaxBytes,
      logKeep: this.init.logKeep,
      containment: this.containment,
      users: this.users,
      watchdog: this.fence.watchdog,
      ports: this.ports,
      processes: this.processes ?? builtinRuntimes.process({ containment: this.containment, recordDir: join(this.init.dataDir, 'run') }),
      images: this.engine,
      address: this.c.membership.address,
      api: this.c.api,
      state: this.c.state,
      proxy: this.c.proxy,
      log: this.c.log,
      clock: this.clock
    }
  }

  /** Who runs each of this node's instances once it has left: the same pure schedule, with this node gone. */
  private successors (): Map<string, string> {
    const applied = this.c.spec.current()
    if (applied === undefined) return new Map()
    return successors({ self: this.nodeId, spec: applied.spec, table: this.c.membership.table(), hubs: this.c.hubs.current(), previousPhase: this.phase?.kind, local: this.x.instances.keys(), schedule: this.schedule })
  }

  /** Reconcile soon; passes never overlap, and a request during one runs one more. */
  private kick (): void {
    if (!this.running) return
    if (this.pass !== undefined) { this.again = true; return }
    this.pass = (async () => {
      do {
        this.again = false
        // Told so node/health can see a supervisor that has work and never finishes it.
        this.events.emit('reconcile', 'started')
        try { await this.reconcile() } catch (err) { this.c.log.error(`reconcile failed: ${errorMessage(err)}`) }
        this.events.emit('reconcile', 'ended')
      } while (this.again && this.running)
    })().finally(() => { this.pass = undefined })
  }

  /** What in the member table matters for the schedule: not heartbeats. */
  private keyOfView (): string {
    const t = this.c.membership.table()
    return JSON.stringify([this.c.hubs.current(), Object.values(t).map((m) => [m.id, m.status, m.instances ?? {}, m.characteristics.memoryMb, m.characteristics.labels, m.characteristics.drained === true, m.characteristics.unhealthy !== undefined])])
  }

  /** One pass: the schedule (and the phase it puts the cluster in), then what to do here about it (reconcile-pass.ts). */
  private async reconcile (): Promise<void> {
    const applied = this.c.spec.current()
    if (applied === undefined) return
    const table = this.c.membership.table()
    const sched = this.schedule({ spec: applied.spec, table, hubs: this.c.hubs.current(), previousPhase: this.phase?.kind })
    this.sched = sched
    if (this.phase?.reason !== sched.phase.reason) {
      if (this.phase?.kind !== sched.phase.kind) this.c.log.info(`phase ${sched.phase.reason}`)
      this.phase = sched.phase
      this.events.emit('phase', sched.phase)
    }
    this.code.keepOnly(applied.version)
    await reconcileAssigned({ self: this.c.membership.id, applied, schedule: sched, table, executor: this.x, fence: this.fence, code: this.code, clock: this.clock })
  }
}
