/** The local API's contract (node/api): the layer, its init and components. Types only. */
import type { Clock } from '../clock'
import type { SpecLayer } from '../desired/contract'
import type { Hubs } from '../hubs/types'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { Usage } from '../supervisor/types'

/** The local API takes no settings: it listens on a loopback port the system picks. */
export type ApiInit = Record<string, never>

/** `spec` (optional) names each service's first port in `ports`; without it, `main`. */
export interface ApiComponents {
  membership: Membership
  hubs: Hubs
  log: Logger
  spec?: SpecLayer
  /**
   * The uid an instance's processes run as, where services run as users of their own
   * (the supervisor's uidOf). Given, a key is refused from a caller of another uid.
   */
  instanceUid?: (instance: string) => number | undefined
  /** This node's instances' live processes (the supervisor's usage): a caller is the instance whose process holds its socket. */
  instanceUsage?: () => Promise<Record<string, Usage>>
  /**
   * How often a refused caller is logged. The watches' keep-alive stays on real time: it
   * keeps real connections from idling out. @default systemClock
   */
  clock?: Clock
}

export interface LocalApi {
  start (): Promise<void>
  stop (): Promise<void>
  /** http://127.0.0.1:PORT, once started. */
  readonly url: string
  /** The key the processes of `instance` (e.g. `web-0`, `agent@node-1`) present. */
  keyFor (instance: string): string
}
