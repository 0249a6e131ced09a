/**
 * supervisor: makes this node run what the scheduler assigns it. Whenever the spec, the
 * members or the hubs change it recomputes the schedule (a pure function: every node gets
 * the same answer) and reconciles: starts what is assigned here, stops what is not,
 * replaces changed instances one at a time across the cluster (the next waits until the
 * previous is ready on the new version), hands a singleton over only once its previous
 * node says it stopped, and pauses, stops or keeps everything below `minNodes` as the
 * spec says. It tells the cluster what it runs through the member table.
 *
 * @example
 *   const s = supervisor({ dataDir })({ spec, membership, hubs, api, log })
 *   s.report()   // this node's instances with status, restarts, uptime
 */
import { EventEmitter } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { LocalApi } from '../api'
import { errorMessage } from '../errors'
import type { Hubs } from '../hubs'
import type { Logger } from '../log'
import type { InstanceSummary, LeaseFact, Membership } from '../membership'
import { assignmentsFor, schedule, serviceOfInstance, type Assignment, type Phase, type Schedule } from '../scheduler'
import type { SpecLayer } from '../desired'
import type { StateLayer } from '../state'
import type { ServiceSpec } from '../desired/types'
import { CodeCache } from './code'
import { endLeftovers, groupContainment, probeContainment, type Containment } from './contain'
import { hostOf, joinHostPort } from '../address'
import { bindHosts, expandVars, instanceEnvironment, portNames, resolveHealth } from './environment'
import { PortBook } from './ports'
import type { Usage } from './procfs'
import { ManagedProcess, type InstanceState, type InstanceStatus } from './process'
import type { Runtime } from '../runtime/contract'
import { mayReplace, runningElsewhere, singletonQuorum } from './rolling'
import { ContainerEngine } from '../runtime/engine'
import { dockerSocket } from '../runtime/docker'
import { resolveEnv, withoutSecrets } from './secrets'
import { instanceUsers, type InstanceUsers, type UidRange } from './users'
import { serviceVersion } from './version'
import { Watchdog } from './watchdog'

export interface SupervisorInit {
  dataDir: string
  /**
   * A node out of touch with a majority for this long gives its singletons up. Must be
   * shorter than membership's deadAfterMs (when the others start them elsewhere); the
   * membership's suspectAfterMs is the natural value. @default 2500
   */
  fenceAfterMs?: number
  /** Instance log rotation: size of one part. @default 10 MiB */
  logMaxBytes?: number
  /** Instance log rotation: rotated parts kept. @default 5 */
  logKeep?: number
  /** The image's secrets folder (env values `{ "secret": name }` are read from it). @default none */
  secretsDir?: string
  /** How instances are contained, as probed once for the node. @default probed at start */
  containment?: Containment
  /** As root: the uids services run as (users.ts); false runs them as root. @default 61000-65000 */
  instanceUids?: UidRange | false
  /**
   * The Docker engine container services (`run.image`) run on: a socket path, `unix://` or
   * `tcp://` address. Connected only once a container service is assigned here.
   * @default DOCKER_HOST, else /var/run/docker.sock
   */
  dockerSocket?: string
}

export interface SupervisorComponents {
  spec: SpecLayer
  membership: Membership
  hubs: Hubs
  api: LocalApi
  state: StateLayer
  log: Logger
  /** The node's proxy: the addresses of the services an instance uses (node/proxy). */
  proxy?: { addressesFor (service: string): Promise<Record<string, string>> }
  /** The `lease` downing strategy's lease, when the node has one: who holds it (membership/lease-holder.ts). */
  lease?: { fact (): LeaseFact }
}

/** An instance's status, or `pending`: assigned here and not running, with the reason. */
export type ReportStatus = Omit<InstanceStatus, 'state'> & { state: InstanceState | 'pending' }

export interface InstanceReport {
  instance: string
  service: string
  node: string
  version: string
  status: ReportStatus
  /** Its first port (PORT); 0 while pending. */
  port: number
  /** Every port by name. */
  ports: Record<string, number>
  /** `host:port` where other nodes reach its first port (127.0.0.1:port for `bind: loopback`). */
  address: string
  logPath: string
  /** Why it does not run the version the spec asks for, while a new version waits. */
  rollout?: string
  /** What happened to its state directory when it started here, in words. */
  state?: string
}

export interface Supervisor {
  start (): Promise<void>
  stop (): Promise<void>
  readonly nodeId: string
  /** The schedule this node computed last. */
  current (): Schedule | undefined
  /** This node's instances. */
  report (): InstanceReport[]
  /** What each running instance uses now (its live processes, their RSS and CPU ticks), by instance id; for stats. */
  usage? (): Promise<Record<string, Usage>>
  /** A service's placement kind in the applied spec, e.g. `replicas 2`. */
  placement (service: string): string | undefined
  /**
   * Stops one of this node's instances and starts it again in place (same version, ports
   * and state); resolves once it has started again (not necessarily ready). For operators'
   * rolling restarts.
   */
  restart? (instance: string): Promise<void>
  /**
   * The uid the processes of `instance` run as, when services run as users of their own
   * (root); undefined otherwise. The local API binds a key to it.
   */
  uidOf? (instance: string): number | undefined
  /**
   * Emits 'phase' (Phase) when the phase changes, 'instance' ({ instance, service, version,
   * address, status }) when one of its instances changes state, and 'waiting' ({ instance,
   * reason }) when an assigned instance waits for a new reason (a rollout step, a build),
   * and 'reconcile' ('started' | 'ended') around each reconcile pass.
   */
  readonly events: EventEmitter
}

interface Instance {
  assignment: Assignment
  version: string
  ports: Array<[string, number]>
  address: string
  proc: ManagedProcess
  logPath: string
  /** The prepared code tree it runs in (kept on disk while it runs). */
  codeDir: string
  stateDir: string
  stateNote: string
  generation?: number
}

export function supervisor (init: SupervisorInit) {
  return (c: SupervisorComponents): Supervisor => new Reconciler(init, c)
}

class Reconciler implements Supervisor {
  readonly events = new EventEmitter()
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
  private readonly engine: ContainerEngine
  private containment: Containment = groupContainment()
  private sched?: Schedule
  private phase?: Phase
  private running = false
  private pass?: Promise<void>
  private again = false
  private viewKey = ''
  private fenceTimer?: NodeJS.Timeout
  private quorumSince?: number
  private prunedFor = ''
  private users?: InstanceUsers
  private watchdog?: Watchdog
  private get fenceAfterMs (): number { return this.init.fenceAfterMs ?? 2500 }
  private readonly onView = (): void => {
    const key = this.keyOfView()
    if (key !== this.viewKey) { this.viewKey = key; this.kick() }
  }

  private readonly onSpec = (): void => { this.kick() }

  constructor (private readonly init: SupervisorInit, private readonly c: SupervisorComponents) {
    this.code = new CodeCache(init.dataDir, c.membership.id, c.log, (b) => this.events.emit('build', b))
    this.ports = new PortBook(join(init.dataDir, 'ports.json'))
    this.engine = new ContainerEngine({ socket: dockerSocket(init.dockerSocket), dataDir: init.dataDir, nodeId: c.membership.id, log: c.log })
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
    const running = [...this.instances.values()].map((i): InstanceReport => ({
      instance: i.assignment.instance,
      service: i.assignment.service,
      node: this.c.membership.id,
      version: i.version,
      status: i.proc.status(),
      port: i.ports[0]?.[1] ?? 0,
      ports: Object.fromEntries(i.ports),
      address: i.address,
      logPath: i.logPath,
      rollout: this.waiting.get(i.assignment.instance),
      state: i.stateNote
    }))
    const pending = [...this.waiting].filter(([id]) => !this.instances.has(id)).map(([id, reason]): InstanceReport => ({
      instance: id,
      service: serviceOfInstance(id),
      node: this.c.membership.id,
      version: '',
      status: { state: 'pending', restarts: 0, reason },
      port: 0,
      ports: {},
      address: '',
      logPath: this.logPathOf(id)
    }))
    return [...running, ...pending].sort((a, b) => (a.instance < b.instance ? -1 : 1))
  }

  async usage (): Promise<Record<string, Usage>> {
    const all = await Promise.all([...this.instances.values()].map(async (i) => [i.assignment.instance, await i.proc.usage()] as const))
    return Object.fromEntries(all.filter((e): e is readonly [string, Usage] => e[1] !== undefined))
  }

  private logPathOf (instance: string): string {
    return join(this.init.dataDir, 'logs', `${instance}.log`)
  }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    await mkdir(join(this.init.dataDir, 'logs'), { recursive: true })
    // Said once, at start: what this node can guarantee about processes outliving instances.
    this.containment = this.init.containment ?? await probeContainment()
    this.c.log[this.containment.pidNamespace ? 'info' : 'warn'](this.containment.detail)
    // A previous run of this node (same data dir) that died hard may have left instances behind.
    for (const line of await endLeftovers(join(this.init.dataDir, 'run'), this.c.log)) this.c.log.warn(line)
    for (const line of await this.engine.endLeftovers()) this.c.log.warn(line)
    if (this.init.instanceUids !== false) this.users = await instanceUsers({ containment: this.containment, dataDir: this.init.dataDir, range: this.init.instanceUids, secretsDir: this.init.secretsDir, log: this.c.log })
    // Fencing a paused node's singletons (watchdog.ts); back from the gap, they are given up and decided afresh.
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
    this.fenceTimer = setInterval(() => { if (this.holdsSingleton() || this.waitsForSingleton()) this.kick() }, Math.max(50, Math.floor(this.fenceAfterMs / 5)))
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
    clearInterval(this.fenceTimer)
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
    const self = this.c.membership.id
    const table = { ...this.c.membership.table() }
    if (table[self] !== undefined) table[self] = { ...table[self], status: 'left', instances: {} }
    const after = schedule({ spec: applied.spec, table, hubs: this.c.hubs.current().filter((h) => h !== self), previousPhase: this.phase?.kind })
    return new Map(after.assignments.filter((a) => this.instances.has(a.instance)).map((a) => [a.instance, a.node]))
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

  private async reconcile (): Promise<void> {
    const applied = this.c.spec.current()
    if (applied === undefined) return
    const self = this.c.membership.id
    const table = this.c.membership.table()
    const sched = schedule({ spec: applied.spec, table, hubs: this.c.hubs.current(), previousPhase: this.phase?.kind })
    this.sched = sched
    if (this.phase?.reason !== sched.phase.reason) {
      if (this.phase?.kind !== sched.phase.kind) this.c.log.info(`phase ${sched.phase.reason}`)
      this.phase = sched.phase
      this.events.emit('phase', sched.phase)
    }
    this.code.keepOnly(applied.version)
    const mine = new Map(assignmentsFor(sched, self).map((a) => [a.instance, a]))
    const inTouch = this.c.membership.reachable(this.fenceAfterMs)
    const byLease = applied.spec.cluster.downing?.strategy === 'lease'
    const lease = byLease ? this.c.lease?.fact() : undefined
    const quorum = singletonQuorum(table, self, inTouch, !byLease, lease !== undefined && !lease.held ? lease.holder : undefined)
    // Singletons start only once the quorum has held for fenceAfterMs: a node back from a
    // partition first lets stale views (someone "dead" who is not) be refuted.
    const now = Date.now()
    if (!quorum.ok) this.quorumSince = undefined
    else if (this.quorumSince === undefined) this.quorumSince = now
    for (const [id, inst] of this.instances) {
      if (this.busy.has(id)) continue
      if (!mine.has(id)) void this.retire(inst, 'no longer assigned to this node')
      else if (!quorum.ok && applied.spec.services[inst.assignment.service]?.placement.kind === 'singleton') {
        void this.retire(inst, `fenced: ${quorum.reason}`, true)
      }
    }
    for (const id of this.waiting.keys()) if (!mine.has(id)) this.waiting.delete(id)
    for (const id of this.held.keys()) if (!mine.has(id)) this.held.delete(id)
    for (const id of this.startFailures.keys()) if (!mine.has(id)) this.startFailures.delete(id)
    for (const a of mine.values()) {
      if (this.busy.has(a.instance)) continue
      const svc = applied.spec.services[a.service]
      let version: string
      let dir: string
      let image: string | undefined
      try {
        const code = await this.code.prepare(a.service, svc, applied)
        dir = code.dir
        version = serviceVersion(svc, code.version)
        // An image's build context and tarballs: the service's own folder of the spec repo, or the root of its code repo.
        if (svc.run.image !== undefined) image = await this.imageFor(a.service, svc.run.image, svc.code === undefined ? join(code.dir, 'services', a.service) : code.dir, code.version)
      } catch (err) {
        // The old version (if any) keeps running; the rollout shows as stuck with the reason.
        this.wait(a.instance, errorMessage(err), 'warn')
        this.retryAt(this.code.nextRetry())
        this.retryAt(this.engine.nextRetry())
        continue
      }
      const existing = this.instances.get(a.instance)
      if (existing !== undefined && existing.version === version) {
        this.waiting.delete(a.instance)
        this.applyPhase(existing, sched.phase)
        continue
      }
      if (sched.phase.kind === 'degraded' && sched.phase.policy === 'pause') { this.wait(a.instance, 'phase degraded: nothing new starts'); continue }
      if (existing !== undefined) {
        const turn = mayReplace(a.instance, version, sched.assignments, table, (id) => this.summary(id))
        if (!turn.ok) { this.wait(a.instance, `new version ${version} waits for ${turn.waitingFor ?? '?'} to be ready on it`); continue }
        this.c.log.info(`replacing ${a.instance}: version ${existing.version} -> ${version}`)
        void this.retire(existing, 'replaced by a new version', false, true)
        continue
      }
      if (svc.placement.kind === 'singleton') {
        if (!quorum.ok) { this.wait(a.instance, quorum.reason); continue }
        const settled = now - (this.quorumSince ?? now)
        if (settled < this.fenceAfterMs) { this.wait(a.instance, `${quorum.reason}; starting once that has held for ${(this.fenceAfterMs / 1000).toFixed(1)} s`); continue }
        const elsewhere = runningElsewhere(table, a.instance, self, inTouch)
        if (elsewhere.length > 0) { this.wait(a.instance, `singleton still ${elsewhere[0].state} on ${elsewhere[0].node}; starting once it stops`); continue }
      }
      const failed = this.startFailures.get(a.instance)
      if (failed !== undefined && failed.at > now) {
        this.wait(a.instance, failed.said, 'warn')
        this.retryAt(failed.at)
        continue
      }
      this.waiting.delete(a.instance)
      this.busy.add(a.instance)
      void this.launch(a, svc, dir, version, applied.version, image)
        .then(() => { this.startFailures.delete(a.instance) }, (err) => {
          const tries = (this.startFailures.get(a.instance)?.tries ?? 0) + 1
          const delayMs = Math.min(60_000, 1000 * 2 ** (tries - 1))
          const said = `cannot start: ${errorMessage(err)}; retrying in ${delayMs / 1000} s (attempt ${tries + 1})`
          this.startFailures.set(a.instance, { at: Date.now() + delayMs, tries, said })
          this.wait(a.instance, said, 'warn')
          this.retryAt(Date.now() + delayMs)
        })
        .finally(() => { this.busy.delete(a.instance); this.publish(); this.kick() })
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

  private retryTimer?: { at: number, timer: NodeJS.Timeout }
  /** Something failed that time may mend (a git server down, a flaky build): reconcile again at `at`. */
  private retryAt (at: number | undefined): void {
    if (at === undefined || (this.retryTimer !== undefined && this.retryTimer.at <= at)) return
    clearTimeout(this.retryTimer?.timer)
    const timer = setTimeout(() => { this.retryTimer = undefined; this.kick() }, Math.max(0, at - Date.now()) + 10)
    timer.unref()
    this.retryTimer = { at, timer }
  }

  private wait (instance: string, reason: string, level: 'info' | 'warn' = 'info'): void {
    if (this.waiting.get(instance) !== reason) {
      this.c.log[level](`${instance}: ${reason}`)
      this.events.emit('waiting', { instance, reason })
    }
    this.waiting.set(instance, reason)
  }

  private summary (instance: string): InstanceSummary | undefined {
    const i = this.instances.get(instance)
    return i === undefined ? undefined : { version: i.version, state: i.proc.status().state, ...(i.generation === undefined ? {} : { generation: i.generation }) }
  }

  private applyPhase (inst: Instance, phase: Phase): void {
    const state = inst.proc.status().state
    if (phase.kind === 'degraded' && phase.policy === 'pause' && state !== 'paused' && state !== 'stopped' && state !== 'failed') {
      this.c.log.info(`${inst.assignment.instance}: pausing (${phase.reason})`)
      inst.proc.pause()
    } else if (phase.kind === 'running' && state === 'paused') {
      this.c.log.info(`${inst.assignment.instance}: resuming (${phase.reason})`)
      inst.proc.resume()
    }
  }

  /** A container service's image, ready on this node's engine; throws, in words, when there is no engine or no image. */
  private async imageFor (service: string, spec: NonNullable<ServiceSpec['run']['image']>, codeDir: string, codeVersion: string): Promise<string> {
    const e = await this.engine.connect()
    if ('reason' in e) throw new Error(`cannot run container service ${service} on this node: ${e.reason}`)
    return await this.engine.image(service, spec, codeDir, codeVersion)
  }

  private async launch (a: Assignment, svc: ServiceSpec, codeDir: string, version: string, specVersion: string, image?: string): Promise<void> {
    const fromSpec = await resolveEnv(svc, this.init.secretsDir)
    const hosts = bindHosts(svc.bind, hostOf(this.c.membership.address))
    const pinned: Record<string, number | undefined> = Object.fromEntries(Object.entries(svc.ports ?? {}).map(([name, p]) => [name, p.port]))
    // A PORT set in the spec's env pins the first port, as it did before named ports.
    const names = portNames(svc)
    if (/^[0-9]+$/.test(fromSpec.PORT ?? '') && pinned[names[0]] === undefined) pinned[names[0]] = Number(fromSpec.PORT)
    const ports = await this.ports.portsFor(a.instance, names, pinned, hosts.listen)
    // Where the state comes from (kept, migrated, restored from a snapshot, or empty) is
    // decided before the process starts; a source that cannot be reached yet stops the start.
    const st = await this.c.state.prepare(a.instance, svc.state)
    const stateDir = st.dir
    const stateNote = st.note
    const logPath = this.logPathOf(a.instance)
    const user = await this.users?.prepare({ service: a.service, instance: a.instance, stateDir, codeDir, ports })
    const env = instanceEnvironment({
      node: a.node,
      service: a.service,
      instance: a.instance,
      spec: specVersion,
      api: this.c.api.url,
      apiKey: this.c.api.keyFor(a.instance),
      ports,
      listenHost: hosts.listen,
      stateDir,
      env: fromSpec,
      uses: await this.c.proxy?.addressesFor(a.service)
    })
    // Secrets reach the process through its environment only: a command line is readable by
    // every user of the machine (and lands in the instance log), so `$SECRET` is left for a shell.
    const expandable = withoutSecrets(env, svc)
    const command = expandVars(svc.run.command ?? '', expandable)
    const args = (svc.run.args ?? []).map((x) => expandVars(x, expandable))
    let runtime: Runtime | undefined
    if (image !== undefined) {
      const e = await this.engine.connect()
      if ('reason' in e) throw new Error(e.reason)
      runtime = e.runtime
      await this.engine.mark()
    }
    const proc = new ManagedProcess({
      id: a.instance,
      command,
      ...(image === undefined ? {} : { image: { ref: image, service: a.service }, runtime }),
      args,
      containment: this.containment,
      user,
      fence: svc.placement.kind === 'singleton' ? this.watchdog : undefined,
      recordDir: join(this.init.dataDir, 'run'),
      env,
      cwd: join(codeDir, svc.run.cwd ?? '.'),
      logPath,
      log: this.c.log,
      restart: { policy: svc.restart?.policy ?? 'always', backoffMs: svc.restart?.backoffMs, maxBackoffMs: svc.restart?.maxBackoffMs },
      health: resolveHealth(svc.health, expandable, ports[0][1], hosts.dial),
      memoryLimitMb: svc.resources?.memoryMb,
      ...(svc.resources?.cpuShares === undefined && svc.resources?.cpus === undefined ? {} : { cpu: { shares: svc.resources.cpuShares, cpus: svc.resources.cpus } }),
      stopGraceMs: svc.stopGraceMs,
      logMaxBytes: this.init.logMaxBytes,
      logKeep: this.init.logKeep
    })
    if (!this.running || this.instances.has(a.instance)) return
    const address = joinHostPort(hosts.dial, ports[0][1])
    const inst: Instance = { assignment: a, version, ports, address, proc, logPath, codeDir, stateDir, stateNote, generation: st.generation }
    this.instances.set(a.instance, inst)
    this.held.delete(a.instance)
    proc.on('status', (s) => {
      this.publish()
      this.events.emit('instance', { instance: a.instance, service: a.service, version, address, status: s })
      if (s.state === 'ready') this.kick() // the next instance of a rolling replacement may go
    })
    const portsText = ports.map(([n, p]) => (names.length === 1 ? String(p) : `${n} ${p}`)).join(', ')
    this.c.log[st.outcome === 'empty' && st.movedAside !== undefined ? 'warn' : 'info'](`starting ${a.instance} (${image === undefined ? command : `container from ${image}`} ${args.join(' ')}; version ${version}; ${ports.length === 1 ? 'port' : 'ports'} ${portsText}; state: ${stateNote})`)
    proc.start()
    this.c.state.attach(a.instance, svc.state, { cwd: join(codeDir, svc.run.cwd ?? '.'), env: { ...env, ...(user === undefined ? {} : { HOME: user.home, TMPDIR: user.tmpDir }) }, uid: user?.uid, gid: user?.gid })
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
    const out: Record<string, InstanceSummary> = {}
    for (const [id, i] of this.instances) {
      out[id] = { version: i.version, state: i.proc.status().state, address: i.address, ...(i.generation === undefined ? {} : { generation: i.generation }), ...(i.ports.length > 1 ? { ports: Object.fromEntries(i.ports) } : {}) }
    }
    // An instance being replaced stays announced as such even once its old process stopped.
    for (const [id, held] of this.held) out[id] = held
    this.c.membership.setInstances(out)
  }
}
