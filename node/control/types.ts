/**
 * control's contract: the operator surface as other parts see it (the layer, its init and
 * components, and the views the REPL renders). Types only.
 */
import type { Clock } from '../clock'
import type { CommitInfo } from '../git/store'
import type { CertificateExpiry } from '../keys/expiry'
import type { HubPolicy, Hubs } from '../hubs/types'
import type { Journal } from '../journal/types'
import type { Logger } from '../log'
import type { Membership, MemberStatus } from '../membership'
import type { SpecLayer, StructuredRejection } from '../desired/contract'
import type { OriginErrorJSON } from '../errors'
import type { Health } from '../health/types'
import type { Proxy } from '../proxy/types'
import type { Supervisor } from '../supervisor/types'
import type { Transport } from '../transport/types'

export interface NodeRow {
  id: string
  address: string
  status: MemberStatus
  hub: boolean
  cpus: number
  memoryMb: number
  arch: string
  labels: Record<string, string>
  startedAt: number
  incarnation: number
  /** `pid-namespace`: nothing an instance starts outlives it; `process-group`: a process that leaves its group may. */
  containment?: string
  /** Names of the secrets its image carries. */
  secrets?: string[]
  /** Its node certificate: serial, expiry, and `ok` / `soon` / `expired` with what to do. */
  certificate?: CertificateExpiry
  /** An operator drained it (`cluster.drain`): it hosts nothing until undrained. */
  drained?: true
  /** It says it cannot do its job, and why (node/health): singletons move off it, nothing new goes there. */
  unhealthy?: string
}

export interface HubsView { hubs: string[], policy: HubPolicy, answeredBy: string }

export interface SpecView {
  answeredBy: string
  applied?: CommitInfo
  nodes: Array<{ id: string, status: MemberStatus, spec?: string }>
  /**
   * The last rejection: `errors` one line each, `problems` the same as data (file, line,
   * path, message), and `error` the OriginError (E_SPEC_INVALID) the REPL rebuilds with fromJSON.
   */
  lastRejected?: Omit<StructuredRejection, 'at'> & { at: string, error: OriginErrorJSON }
  /** `done` when every instance runs what the applied spec asks; `waiting` with the reasons otherwise. */
  rollout: 'done' | 'waiting'
  /** Instances not (yet) running the applied spec's version, and why (`build failed: ...`). */
  waiting: Array<{ instance: string, node: string, reason: string }>
}

/** control takes no settings yet: its limits are in node/protocol and actions.ts. */
export type ControlInit = Record<string, never>

export interface ControlComponents {
  transport: Transport
  membership: Membership
  hubs: Hubs
  spec: SpecLayer
  supervisor: Supervisor
  dataDir: string
  log: Logger
  journal?: Journal
  /** Its admission refusals are part of the node's stats. */
  proxy?: Pick<Proxy, 'admissionRefusals'>
  /** The event loop delay in the node's stats is the one it judges. */
  health?: Pick<Health, 'loopDelay'>
  /**
   * The times views show (pings, uptimes, how long a member has had its status, drains) and
   * the wait for a restarted instance. CPU windows, evaluations' limits and certificate
   * expiry stay on real time: they measure real processes and the host's clock. @default systemClock
   */
  clock?: Clock
}

/** The operator surface on one node: serves node/protocol/operator.ts (and control's part of mesh.ts) once started. */
export interface Control {
  start (): Promise<void>
  stop (): Promise<void>
}
