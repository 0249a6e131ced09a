/**
 * The reconcile executor: carries out the actions plan.ts decided (start, stop, replace,
 * pause, resume, wait) and keeps what this node holds meanwhile: its instances, those with
 * a start or stop under way, why assigned ones wait, and starts that failed. It announces
 * what runs here in the member table after each change (report.ts says it).
 */
import type { EventEmitter } from 'node:events'
import type { Clock, Timer } from '../clock'
import type { ServiceSpec } from '../desired/types'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import type { InstanceSummary, Membership } from '../membership'
import { serviceOfInstance, type Assignment } from '../scheduler'
import type { StateLayer } from '../state'
import type { PreparedRun } from './code-prepare'
import { prepareInstance, type Instance, type LaunchContext } from './launch'
import type { PlanAction } from './plan'
import { startRetryDelay, supervisorDefaults } from './policy'
import { summariesOf } from './report'
import type { SupervisorEvents } from './types'

export interface ExecutorHost {
  clock: Clock
  log: Logger
  membership: Pick<Membership, 'setInstances'>
  state: Pick<StateLayer, 'detach' | 'handOver'>
  events: EventEmitter<SupervisorEvents>
  /** What an instance is made with; known once the supervisor has started. */
  launchContext: () => LaunchContext
  /** The supervisor still runs (a start that ends after its stop is dropped). */
  running: () => boolean
  /** Reconcile again soon. */
  kick: () => void
}

/** The applied spec as the executor needs it. */
export interface AppliedServices { version: string, spec: { services: Record<string, ServiceSpec> } }

export class Executor {
  readonly instances = new Map<string, Instance>()
  /** Instances with a start or stop under way: reconcile leaves them alone until it ends. */
  readonly busy = new Set<string>()
  /** Why an assigned instance is not running (code could not be prepared, waiting for a handover). */
  readonly waiting = new Map<string, string>()
  /**
   * Instances being replaced by a new version here: still announced (as `replacing`) between
   * the old process's exit and the new one's start, so the schedule keeps them on this node
   * rather than sending them back to their rendezvous "home".
   */
  readonly held = new Map<string, InstanceSummary>()
  /**
   * Instances whose last start failed before their process ran (a port, the state dir, the
   * engine): not tried again before `at`, the wait doubling from 1 s to a minute, so a cause
   * that lasts is neither retried in a tight loop nor logged for each try.
   */
  readonly startFailures = new Map<string, { at: number, tries: number, said: string }>()
  /** When each singleton was fenced here (stopped at once, or given up to the watchdog) within the policy's window, oldest first. */
  readonly fencedAt = new Map<string, number[]>()
  private retryTimer?: { at: number, timer: Timer }

  constructor (private readonly h: ExecutorHost) {}

  /** Does what the plan says; `code` holds the prepared code tree (and image) of instances it may start. */
  carryOut (actions: PlanAction[], code: ReadonlyMap<string, PreparedRun>, applied: AppliedServices): void {
    for (const act of actions) {
      const id = act.kind === 'start' ? act.assignment.instance : act.instance
      const inst = this.instances.get(id)
      switch (act.kind) {
        case 'stop':
          if (inst === undefined) break
          if (act.atOnce) this.noteFenced(id)
          void this.retire(inst, act.reason, act.atOnce)
          break
        case 'replace':
          if (inst === undefined) break
          this.h.log.info(`replacing ${id}: version ${act.from} -> ${act.to}`)
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
          this.h.log.info(`${id}: pausing (${act.reason})`)
          inst.proc.pause()
          break
        case 'resume':
          if (inst === undefined) break
          this.h.log.info(`${id}: resuming (${act.reason})`)
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

  /** `instance` was fenced here now (plan.ts makes the quorum hold longer after each more fence). */
  noteFenced (instance: string): void {
    const now = this.h.clock.now()
    const recent = (this.fencedAt.get(instance) ?? []).filter((t) => now - t < supervisorDefaults.fenceWindowMs)
    this.fencedAt.set(instance, [...recent, now])
  }

  /** What is no longer assigned here neither waits, nor is held, nor remembers a failed start. */
  forgetUnassigned (assigned: ReadonlySet<string>): void {
    for (const id of this.waiting.keys()) if (!assigned.has(id)) this.waiting.delete(id)
    for (const id of this.held.keys()) if (!assigned.has(id)) this.held.delete(id)
    for (const id of this.startFailures.keys()) if (!assigned.has(id)) this.startFailures.delete(id)
  }

  /**
   * Stop an instance (at once with `now`: SIGKILL, no grace) and forget it; the id stays busy
   * until it has exited. With `replacing`, the instance stays announced until its new version starts.
   */
  async retire (inst: Instance, why: string, now = false, replacing = false): Promise<void> {
    const id = inst.assignment.instance
    this.busy.add(id)
    if (replacing) this.held.set(id, { version: inst.version, state: 'replacing', ...(inst.generation === undefined ? {} : { generation: inst.generation }) })
    this.h.log[now ? 'warn' : 'info'](`stopping ${id}${now ? ' at once' : ''}: ${why}`)
    try {
      if (now) inst.proc.kill()
      await inst.proc.stop()
      await this.h.state.detach(id, { graceful: !now }).catch((err) => this.h.log.warn(`${id}: ${errorMessage(err)}`))
    } finally {
      if (this.instances.get(id) === inst) this.instances.delete(id)
      this.busy.delete(id)
      this.publish()
      this.h.kick()
    }
  }

  /**
   * Stops every instance, the node leaving: each gracefully, its state detached and, for
   * `migrate`, handed over now to the node that takes it next (`next`, by instance).
   */
  async stopAll (next: ReadonlyMap<string, string>, services: () => Record<string, ServiceSpec>): Promise<void> {
    const all = [...this.instances.values()]
    if (all.length > 0) this.h.log.info(`stopping ${all.length} instances`)
    await Promise.all(all.map(async (i) => {
      const id = i.assignment.instance
      await i.proc.stop()
      await this.h.state.detach(id, { graceful: true }).catch((err) => this.h.log.warn(`${id}: ${errorMessage(err)}`))
      const svc = services()[i.assignment.service]
      const to = next.get(id)
      if (svc?.state?.mode === 'migrate' && to !== undefined) {
        const r = await this.h.state.handOver(id, svc.state, to)
        this.h.log[r.ok ? 'info' : 'warn'](`${id}: ${r.ok ? `state directory handed over to ${to}` : `could not hand the state directory over to ${to}: ${r.detail ?? '?'}`}`)
      }
    }))
    this.instances.clear()
    this.publish()
  }

  /** A singleton runs here or waits to: the fence clock keeps looking at the quorum meanwhile. */
  singletonAtStake (services: Record<string, ServiceSpec>): boolean {
    const singleton = (service: string): boolean => services[service]?.placement.kind === 'singleton'
    return [...this.instances.values()].some((i) => singleton(i.assignment.service)) || [...this.waiting.keys()].some((id) => singleton(serviceOfInstance(id)))
  }

  /** Tells the cluster what runs here, through the member table. */
  publish (): void {
    this.h.membership.setInstances(summariesOf(this.instances, this.held))
  }

  /** Starts `a` in the background; a start that fails before its process runs is tried again later, less and less often. */
  private begin (a: Assignment, svc: ServiceSpec, code: PreparedRun, version: string, specVersion: string): void {
    this.waiting.delete(a.instance)
    this.busy.add(a.instance)
    void this.launch(a, svc, code, version, specVersion)
      .then(() => { this.startFailures.delete(a.instance) }, (err) => {
        const tries = (this.startFailures.get(a.instance)?.tries ?? 0) + 1
        const delayMs = startRetryDelay(tries)
        const said = `cannot start: ${errorMessage(err)}; retrying in ${delayMs / 1000} s (attempt ${tries + 1})`
        const at = this.h.clock.now() + delayMs
        this.startFailures.set(a.instance, { at, tries, said })
        this.wait(a.instance, said, 'warn')
        this.retryAt(at)
      })
      .finally(() => { this.busy.delete(a.instance); this.publish(); this.h.kick() })
  }

  private async launch (a: Assignment, svc: ServiceSpec, code: PreparedRun, version: string, specVersion: string): Promise<void> {
    const { inst, begin } = await prepareInstance(this.h.launchContext(), a, svc, code.dir, version, specVersion, code.image)
    if (!this.h.running() || this.instances.has(a.instance)) return
    this.instances.set(a.instance, inst)
    this.held.delete(a.instance)
    inst.proc.on('status', (s) => {
      this.publish()
      this.h.events.emit('instance', { instance: a.instance, service: a.service, version, address: inst.address, status: s })
      if (s.state === 'ready') this.h.kick() // the next instance of a rolling replacement may go
    })
    begin()
  }

  /** Something failed that time may mend (a git server down, a flaky build): reconcile again at `at`. */
  private retryAt (at: number | undefined): void {
    if (at === undefined || (this.retryTimer !== undefined && this.retryTimer.at <= at)) return
    this.retryTimer?.timer.cancel()
    const timer = this.h.clock.after(Math.max(0, at - this.h.clock.now()) + 10, () => { this.retryTimer = undefined; this.h.kick() }).unref()
    this.retryTimer = { at, timer }
  }

  private wait (instance: string, reason: string, level: 'info' | 'warn' = 'info'): void {
    if (this.waiting.get(instance) !== reason) {
      this.h.log[level](`${instance}: ${reason}`)
      this.h.events.emit('waiting', { instance, reason })
    }
    this.waiting.set(instance, reason)
  }
}
