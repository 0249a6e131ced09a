/**
 * supervisor: makes this node run what the scheduler assigns it. Whenever the spec, the
 * members or the hubs change it recomputes the schedule (a pure function: every node gets
 * the same answer) and reconciles: the Reconciler below gathers what it knows, asks the
 * pure plan (plan.ts) what to do, carries that out and publishes; it starts what is
 * assigned here, stops what is not,
 * replaces changed instances one at a time across the cluster (the next waits until the
 * previous is ready on the new version), hands a singleton over only once its previous
 * node says it stopped, and pauses, stops or keeps everything below `minNodes` as the
 * spec says. It tells the cluster what it runs through the member table.
 *
 * Its contract (interface, Init, Components, events) is types.ts; runtimes and the schedule
 * function are components with built-in defaults, so the assembly can replace them.
 *
 * @example
 *   const s = supervisor({ dataDir })({ spec, membership, hubs, api, state, log })
 *   s.report()   // this node's instances with status, restarts, uptime
 */
import { EventEmitter } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { systemClock, type Clock, type Timer } from '../clock'
import { errorMessage } from '../errors'
import type { InstanceSummary } from '../membership'
import { builtinRuntimes } from '../runtime/builtin'
import type { ImageRuntime, Runtime } from '../runtime/contract'
import { dockerSocket } from '../runtime/docker'
import { schedule as builtinSchedule, serviceOfInstance, type Assignment, type Phase, type Schedule, type ScheduleFn } from '../scheduler'
import type { ServiceSpec } from '../desired/types'
import { CodeCache } from './code'
import { endLeftovers, groupContainment, probeContainment, type Containment } from './contain'
import { logPathOf, prepareInstance, type Instance } from './launch'
import { plan, successors, type PlanAction } from './plan'
import { startRetryDelay, supervisorDefaults } from './policy'
import { PortBook } from './ports'
import { reportOf, summariesOf } from './report'
import type { Usage } from './procfs'
import { singletonQuorum } from './rolling'
import type { InstanceReport, Supervisor, SupervisorComponents, SupervisorEvents, SupervisorInit } from './types'
import { instanceUsers, type InstanceUsers } from './users'
import { serviceVersion } from './version'
import { Watchdog } from './watchdog'

export type { InstanceEvent, InstanceReport, ReportStatus, Supervisor, SupervisorComponents, SupervisorEvents, SupervisorInit } from './types'

export function supervisor (init: SupervisorInit) {
  return (c: SupervisorComponents): Supervisor => new Reconciler(init, c)
}

class Reconciler implements Supervisor {
  readonly events = new EventEmitter<SupervisorEvents>()
  private readonly instances = new Map<string, Instance>()
  /** Instances with a start or stop under way: reconcile leaves them alone until it ends. */
  private readonly busy = new Set<string>()
  /** Why an assigned instance is not running (code could not be prepared, waiting for a handover). */
  private readonly waiting = new Map<string, string>()
  /**
   * Instances being replaced by a new version here: still announced (as `replacing`) between
   * the old process's exit and the new one's start, so the schedule keeps them on this node
   * rather than sending them back to their rendezvous "home".
   */
  private readonly held = new Map<string, InstanceSummary>()
  /**
   * Instances whose last start failed before their process ran (a port, the state dir, the
   * engine): not tried again before `at`, the wait doubling from 1 s to a minute, so a cause
   * that lasts is neither retried in a tight loop nor logged for each try.
   */
  private readonly startFailures = new Map<string, { at: number, tries: number, said: string }>()
  private readonly code: CodeCache
  private readonly ports: PortBook
  private readonly engine: ImageRuntime
  private readonly schedule: ScheduleFn
  private processes?: Runtime
  private containment: Containment = groupContainment()
  private sched?: Schedule
  private phase?: Phase
  private running = false
  private pass?: Promise<void>
  private again = false
  private viewKey = ''
  private fenceTimer?: Timer
  private prunedFor = ''
  private users?: InstanceUsers
  private watchdog?: Watchdog
  private quorumSince?: number
  private get fenceAfterMs (): number { return this.init.fenceAfterMs ?? supervisorDefaults.fenceAfterMs }
  private readonly onView = (): void => {
    const key = this.keyOfView()
    if (key !== this.viewKey) { this.viewKey = key; this.kick() }
  }

  private readonly onSpec = (): void => { this.kick() }

  private readonly clock: Clock

  constructor (private readonly init: SupervisorInit, private readonly c: SupervisorComponents) {
    this.clock = c.clock ?? systemClock
    this.code = new CodeCache(init.dataDir, c.membership.id, c.log, (b) => this.events.emit('build', b), this.clock)
    this.ports = new PortBook(join(init.dataDir, 'ports.json'))
    this.engine = (c.runtimes?.container ?? builtinRuntimes.container)({ socket: dockerSocket(init.dockerSocket), dataDir: init.dataDir, nodeId: c.membership.id, log: c.log })
    this.schedule = c.schedule ?? builtinSchedule
  }

  current (): Schedule | undefined { return this.sched }
  get nodeId (): string { return this.c.membership.id }

  async restart (instance: string): Promise<void> {
    const inst = this.instances.get(instance)
    if (inst === undefined) throw new Error(`${instance} does not run on ${this.nodeId}`)
    if (this.busy.has(instance)) throw new Error(`${instance} is being started or stopped; try again`)
    this.busy.add(instance) // reconcile leaves it alone meanwhile
    this.c.log.info(`restarting ${instance} in place (operator)`)
    try {
      const stopped = inst.proc.stop()
      inst.proc.start() // while stopping: starts again once it has exited
      await stopped
    } finally {
      this.busy.delete(instance)
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
    return reportOf(this.c.membership.id, this.instances.values(), this.waiting, (id) => this.logPathOf(id))
  }

  async usage (): Promise<Record<string, Usage>> {
    const all = await Promise.all([...this.instances.values()].map(async (i) => [i.assignment.instance, await i.proc.usage()] as const))
    return Object.fromEntries(all.filter((e): e is readonly [string, Usage] => e[1] !== undefined))
  }

  private logPathOf (instance: string): string {
    return logPathOf(this.init.dataDir, instance)
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
    // Fencing a paused node's singletons (watchdog.ts); back from the gap, they are given up and decided afresh.
    // The watchdog stays on the host's clock: it renews against a real process's `read -t`.
    this.watchdog = new Watchdog({
      timeoutMs: this.fenceAfterMs,
      log: this.c.log,
      onLapse: (ids, why) => {
        this.quorumSince = undefined // as back from a partition: views settle before a singleton starts again
        for (const id of ids) { const i = this.instances.get(id); if (i !== undefined && !this.busy.has(id)) void this.retire(i, why, true) }
      }
    })
    await this.watchdog.start()
    this.c.spec.events.on('applied', this.onSpec)
    this.c.membership.events.on('change', this.onView)
    this.c.hubs.events.on('change', this.onView)
    // Losing touch changes no member status at first: look at the quorum on a clock too.
    this.fenceTimer = this.clock.every(Math.max(50, Math.floor(this.fenceAfterMs / 5)), () => { if (this.holdsSingleton() || this.waitsForSingleton()) this.kick() })
    this.kick()
  }

  private waitsForSingleton (): boolean {
    const services = this.c.spec.current()?.spec.services ?? {}
    return [...this.waiting.keys()].some((id) => services[serviceOfInstance(id)]?.placement.kind === 'singleton')
  }

  private holdsSingleton (): boolean {
    const services = this.c.spec.current()?.spec.services ?? {}
    return [...this.instances.values()].some((i) => services[i.assignment.service]?.placement.kind === 'singleton')
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.fenceTimer?.cancel()
    this.c.spec.events.off('applied', this.onSpec)
    this.c.membership.events.off('change', this.onView)
    this.c.hubs.events.off('change', this.onView)
    await this.pass
    const all = [...this.instances.values()]
    if (all.length > 0) this.c.log.info(`stopping ${all.length} instances`)
    const next = this.successors()
    await Promise.all(all.map(async (i) => {
      const id = i.assignment.instance
      await i.proc.stop()
      await this.c.state.detach(id, { graceful: true }).catch((err) => this.c.log.warn(`${id}: ${errorMessage(err)}`))
      // migrate: this node is leaving, so the node taking the instance next gets the directory now.
      const svc = this.c.spec.current()?.spec.services[i.assignment.service]
      const to = next.get(id)
      if (svc?.state?.mode === 'migrate' && to !== undefined) {
        const r = await this.c.state.handOver(id, svc.state, to)
        this.c.log[r.ok ? 'info' : 'warn'](`${id}: ${r.ok ? `state directory handed over to ${to}` : `could not hand the state directory over to ${to}: ${r.detail ?? '?'}`}`)
      }
    }))
    this.instances.clear()
    this.publish()
    await this.engine.stop()
    await this.watchdog?.stop()
    this.users?.close()
  }

  /** Who runs each of this node's instances once it has left: the same pure schedule, with this node gone. */
  private successors (): Map<string, string> {
    const applied = this.c.spec.current()
    if (applied === undefined) return new Map()
    return successors({ self: this.nodeId, spec: applied.spec, table: this.c.membership.table(), hubs: this.c.hubs.current(), previousPhase: this.phase?.kind, local: this.instances.keys(), schedule: this.schedule })
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

  /**
   * One pass: gather what the plan needs, prepare each assigned instance's code (the slow
   * part: a fetch, a build), and carry out the plan's actions as they come, so a start
   * need not wait for another service's build.
   */
  private async reconcile (): Promise<void> {
    const applied = this.c.spec.current()
    if (applied === undefined) return
    const self = this.c.membership.id
    const table = this.c.membership.table()
    const sched = this.schedule({ spec: applied.spec, table, hubs: this.c.hubs.current(), previousPhase: this.phase?.kind })
    this.sched = sched
    if (this.phase?.reason !== sched.phase.reason) {
      if (this.phase?.kind !== sched.phase.kind) this.c.log.info(`phase ${sched.phase.reason}`)
      this.phase = sched.phase
      this.events.emit('phase', sched.phase)
    }
    this.code.keepOnly(applied.version)
    const mine = sched.assignments.filter((a) => a.node === self)
    const assigned = new Set(mine.map((a) => a.instance))
    // The fence grows with the cluster (membership/fence.ts): past ~20 members a fixed window holds too few of them.
    const fenceMs = this.c.membership.fenceWindowMs?.() ?? this.fenceAfterMs
    const inTouch = this.c.membership.reachable(fenceMs)
    const byLease = applied.spec.cluster.downing?.strategy === 'lease'
    const lease = byLease ? this.c.lease?.fact() : undefined
    const quorum = singletonQuorum(table, self, inTouch, !byLease, lease !== undefined && !lease.held ? lease.holder : undefined)
    const now = this.clock.now()
    const planFor = (versions: Parameters<typeof plan>[0]['versions']): PlanAction[] => {
      const p = plan({
        self,
        schedule: sched,
        services: applied.spec.services,
        local: Object.fromEntries([...this.instances].map(([id, i]) => [id, { service: i.assignment.service, version: i.version, state: i.proc.status().state }])),
        busy: this.busy,
        versions,
        table,
        inTouch,
        quorum,
        quorumSince: this.quorumSince,
        fenceAfterMs: fenceMs,
        startFailures: Object.fromEntries(this.startFailures),
        now
      })
      this.quorumSince = p.quorumSince
      return p.actions
    }
    // First what stops (not assigned here, fenced): no code is needed to decide it.
    this.carryOut(planFor({}), new Map(), applied)
    for (const id of this.waiting.keys()) if (!assigned.has(id)) this.waiting.delete(id)
    for (const id of this.held.keys()) if (!assigned.has(id)) this.held.delete(id)
    for (const id of this.startFailures.keys()) if (!assigned.has(id)) this.startFailures.delete(id)
    for (const a of mine) {
      if (this.busy.has(a.instance)) continue
      const svc = applied.spec.services[a.service]
      let wanted: { version: string } | { error: string, retryAt?: number }
      const code = new Map<string, { dir: string, image?: string }>()
      try {
        const prepared = await this.code.prepare(a.service, svc, applied)
        // An image's build context and tarballs: the service's own folder of the spec repo, or the root of its code repo.
        const image = svc.run.image === undefined ? undefined : await this.imageFor(a.service, svc.run.image, svc.code === undefined ? join(prepared.dir, 'services', a.service) : prepared.dir, prepared.version)
        wanted = { version: serviceVersion(svc, prepared.version) }
        code.set(a.instance, { dir: prepared.dir, image })
      } catch (err) {
        const retries = [this.code.nextRetry(), this.engine.nextRetry()].filter((t): t is number => t !== undefined)
        wanted = { error: errorMessage(err), ...(retries.length === 0 ? {} : { retryAt: Math.min(...retries) }) }
      }
      this.carryOut(planFor({ [a.instance]: wanted }), code, applied)
    }
    this.publish()
    // Only when what runs changed: reconcile also runs on a clock while a singleton is held.
    const inUse = [...new Set([...this.instances.values()].map((i) => i.codeDir))].sort()
    const key = `${applied.version}\n${inUse.join('\n')}`
    if (key !== this.prunedFor) {
      this.prunedFor = key
      await this.code.prune(new Set(inUse))
    }
  }

  /** Does what the plan says; `code` holds the prepared code tree (and image) of instances it may start. */
  private carryOut (actions: PlanAction[], code: Map<string, { dir: string, image?: string }>, applied: { version: string, spec: { services: Record<string, ServiceSpec> } }): void {
    for (const act of actions) {
      const id = act.kind === 'start' ? act.assignment.instance : act.instance
      const inst = this.instances.get(id)
      switch (act.kind) {
        case 'stop':
          if (inst !== undefined) void this.retire(inst, act.reason, act.atOnce)
          break
        case 'replace':
          if (inst === undefined) break
          this.c.log.info(`replacing ${id}: version ${act.from} -> ${act.to}`)
          void this.retire(inst, 'replaced by a new version', false, true)
          break
        case 'wait':
          this.wait(id, act.reason, act.level)
          this.retryAt(act.retryAt)
          break
        case 'keep':
          this.waiting.delete(id)
          break
        case 'pause':
          if (inst === undefined) break
          this.c.log.info(`${id}: pausing (${act.reason})`)
          inst.proc.pause()
          break
        case 'resume':
          if (inst === undefined) break
          this.c.log.info(`${id}: resuming (${act.reason})`)
          inst.proc.resume()
          break
        case 'start': {
          const prepared = code.get(id)
          const svc = applied.spec.services[act.assignment.service]
          if (prepared === undefined || svc === undefined) break
          this.begin(act.assignment, svc, prepared, act.version, applied.version)
          break
        }
      }
    }
  }

  /** Starts `a` in the background; a start that fails before its process runs is tried again later, less and less often. */
  private begin (a: Assignment, svc: ServiceSpec, code: { dir: string, image?: string }, version: string, specVersion: string): void {
    this.waiting.delete(a.instance)
    this.busy.add(a.instance)
    void this.launch(a, svc, code.dir, version, specVersion, code.image)
      .then(() => { this.startFailures.delete(a.instance) }, (err) => {
        const tries = (this.startFailures.get(a.instance)?.tries ?? 0) + 1
        const delayMs = startRetryDelay(tries)
        const said = `cannot start: ${errorMessage(err)}; retrying in ${delayMs / 1000} s (attempt ${tries + 1})`
        const at = this.clock.now() + delayMs
        this.startFailures.set(a.instance, { at, tries, said })
        this.wait(a.instance, said, 'warn')
        this.retryAt(at)
      })
      .finally(() => { this.busy.delete(a.instance); this.publish(); this.kick() })
  }

  private retryTimer?: { at: number, timer: Timer }
  /** Something failed that time may mend (a git server down, a flaky build): reconcile again at `at`. */
  private retryAt (at: number | undefined): void {
    if (at === undefined || (this.retryTimer !== undefined && this.retryTimer.at <= at)) return
    this.retryTimer?.timer.cancel()
    const timer = this.clock.after(Math.max(0, at - this.clock.now()) + 10, () => { this.retryTimer = undefined; this.kick() }).unref()
    this.retryTimer = { at, timer }
  }

  private wait (instance: string, reason: string, level: 'info' | 'warn' = 'info'): void {
    if (this.waiting.get(instance) !== reason) {
      this.c.log[level](`${instance}: ${reason}`)
      this.events.emit('waiting', { instance, reason })
    }
    this.waiting.set(instance, reason)
  }

  /** A container service's image, ready on this node's engine; throws, in words, when there is no engine or no image. */
  private async imageFor (service: string, spec: NonNullable<ServiceSpec['run']['image']>, codeDir: string, codeVersion: string): Promise<string> {
    const e = await this.engine.connect()
    if ('reason' in e) throw new Error(`cannot run container service ${service} on this node: ${e.reason}`)
    return await this.engine.image(service, spec, codeDir, codeVersion)
  }

  private async launch (a: Assignment, svc: ServiceSpec, codeDir: string, version: string, specVersion: string, image?: string): Promise<void> {
    const { inst, begin } = await prepareInstance({
      dataDir: this.init.dataDir,
      secretsDir: this.init.secretsDir,
      logMaxBytes: this.init.logMaxBytes,
      logKeep: this.init.logKeep,
      containment: this.containment,
      users: this.users,
      watchdog: svc.placement.kind === 'singleton' ? this.watchdog : undefined,
      ports: this.ports,
      processes: this.processes ?? builtinRuntimes.process({ containment: this.containment, recordDir: join(this.init.dataDir, 'run') }),
      images: this.engine,
      address: this.c.membership.address,
      api: this.c.api,
      state: this.c.state,
      proxy: this.c.proxy,
      log: this.c.log,
      clock: this.clock
    }, a, svc, codeDir, version, specVersion, image)
    if (!this.running || this.instances.has(a.instance)) return
    this.instances.set(a.instance, inst)
    this.held.delete(a.instance)
    inst.proc.on('status', (s) => {
      this.publish()
      this.events.emit('instance', { instance: a.instance, service: a.service, version, address: inst.address, status: s })
      if (s.state === 'ready') this.kick() // the next instance of a rolling replacement may go
    })
    begin()
  }

  /**
   * Stop an instance (at once with `now`: SIGKILL, no grace) and forget it; the id stays busy
   * until it has exited. With `replacing`, the instance stays announced until its new version starts.
   */
  private async retire (inst: Instance, why: string, now = false, replacing = false): Promise<void> {
    const id = inst.assignment.instance
    this.busy.add(id)
    if (replacing) this.held.set(id, { version: inst.version, state: 'replacing', ...(inst.generation === undefined ? {} : { generation: inst.generation }) })
    this.c.log[now ? 'warn' : 'info'](`stopping ${id}${now ? ' at once' : ''}: ${why}`)
    try {
      if (now) inst.proc.kill()
      await inst.proc.stop()
      await this.c.state.detach(id, { graceful: !now }).catch((err) => this.c.log.warn(`${id}: ${errorMessage(err)}`))
    } finally {
      if (this.instances.get(id) === inst) this.instances.delete(id)
      this.busy.delete(id)
      this.publish()
      this.kick()
    }
  }

  private publish (): void {
    this.c.membership.setInstances(summariesOf(this.instances, this.held))
  }
}
