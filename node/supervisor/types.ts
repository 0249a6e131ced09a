/**
 * The supervisor's contract, types only: what other layers may use of it (Supervisor), how
 * it is configured (SupervisorInit, every option with its default), what it needs
 * (SupervisorComponents) and what it tells (SupervisorEvents). The implementation is
 * index.ts (`supervisor(init)(components)`); decisions are in plan.ts and policy.ts.
 */
import type { EventEmitter } from 'node:events'
import type { LocalApi } from '../api'
import type { Clock } from '../clock'
import type { Hubs } from '../hubs'
import type { Logger } from '../log'
import type { LeaseFact, Membership } from '../membership'
import type { SpecLayer } from '../desired'
import type { StateLayer } from '../state'
import type { RuntimeSet } from '../runtime/contract'
import type { Phase, Schedule, ScheduleFn } from '../scheduler'
import type { BuildEvent } from './code'
import type { Containment } from './contain'
import type { InstanceState, InstanceStatus } from './process-types'
import type { Usage } from './procfs'

export type { InstanceState, InstanceStatus, Usage }
import type { UidRange } from './users'

export interface SupervisorInit {
  /** The node's data directory: instance logs, ports, code trees, run records live under it. */
  dataDir: string
  /**
   * A node out of touch with a majority for this long gives its singletons up. Must be
   * shorter than membership's deadAfterMs (when the others start them elsewhere); the
   * membership's suspectAfterMs is the natural value. @default supervisorDefaults.fenceAfterMs (policy.ts)
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
  /**
   * How instances run, by name: `process` (a service's command on the host) and `container`
   * (its image). Any left out is the built-in. @default node/runtime process and Docker engine
   */
  runtimes?: Partial<RuntimeSet>
  /** Who runs what: a pure function every node computes alike. @default node/scheduler schedule */
  schedule?: ScheduleFn
  /**
   * The time the supervisor decides by: restart backoff, health and memory timers, the
   * quorum/fence clock, start and code-preparation retries. What a real process times
   * itself (a stop's SIGKILL grace, a health check's own timeout, the watchdog) stays on
   * the host's clock. @default systemClock
   */
  clock?: Clock
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

/** One of this node's instances changed state. */
export interface InstanceEvent { instance: string, service: string, version: string, address: string, status: InstanceStatus }

export interface SupervisorEvents {
  /** The phase changed (its kind or its reason). */
  phase: [Phase]
  instance: [InstanceEvent]
  /** An assigned instance waits for a new reason (a rollout step, a build, a handover). */
  waiting: [{ instance: string, reason: string }]
  /** Around each reconcile pass: node/health sees a supervisor that has work and never finishes it. */
  reconcile: ['started' | 'ended']
  /** A service's build (code or image) started, succeeded or failed. */
  build: [BuildEvent]
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
  readonly events: EventEmitter<SupervisorEvents>
}
