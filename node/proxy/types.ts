/** The proxy's contract (node/proxy): the layer, its init with defaults, its components. Types only. */
import type { Clock } from '../clock'
import type { SpecLayer } from '../desired/contract'
import type { Hubs } from '../hubs/types'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { InstanceReport } from '../supervisor/types'
import type { Usage } from '../supervisor/procfs'
import type { StreamIdentity } from '../transport/stream'
import type { Transport } from '../transport/types'

export interface ProxyInit {
  /** How long a new connection waits for a ready instance before it is closed. @default 5000 */
  waitForReadyMs?: number
  /** Opening the TLS stream to another node. @default 3000 */
  connectTimeoutMs?: number
  /**
   * For `admission.maxKeys`: an instance holds a key from a request with it (through this
   * node) until this long passes without one. Longer protects per-key state an instance
   * keeps between sparse requests; shorter frees room sooner for new keys. @default 60000
   */
  keyIdleMs?: number
}

export interface ProxyComponents {
  identity: StreamIdentity
  transport: Transport
  membership: Membership
  hubs: Hubs
  spec: SpecLayer
  /** This node's instances (the supervisor's report), read when a connection comes. */
  local: () => InstanceReport[]
  /** Live processes of this node's instances, to tell their connections from others'. */
  usage?: () => Promise<Record<string, Usage>>
  log: Logger
  /**
   * The node's time: how long a connection waits for a ready instance, when a port that
   * could not be listened on is tried again, admission's key idleness. @default systemClock
   */
  clock?: Clock
}

export interface PublishedPort {
  service: string
  port: number
  /** `listening`, or why not in words. */
  state: string
}

export interface Proxy {
  start (): Promise<void>
  stop (): Promise<void>
  /** The `*_ADDR` / `*_HOST` / `*_PORT` variables for an instance of `service` (listeners opened as needed). */
  addressesFor (service: string): Promise<Record<string, string>>
  /** The ports this node publishes, and whether it listens on each. */
  published (): PublishedPort[]
  /** Connections being forwarded now, by target instance. */
  connections (): Record<string, number>
  /** Requests refused at a service's admission limit, by service, since the node started. */
  admissionRefusals (): Record<string, number>
}
