/**
 * The discovery contract: how a node learns `host:port` addresses of nodes that may be in
 * its cluster. Types only; every method (seeds, dns, git, a plugin) implements it, and
 * `discovery()` in index.ts runs several together as one.
 */
import type { EventEmitter } from 'node:events'
import type { Clock } from '../clock'
import type { Logger } from '../log'

export interface Discovery {
  /** What this method is, for logs (`dns origin.svc`, `git https://.../peers.git`). */
  readonly name: string
  /**
   * First lookup, then keep looking. Resolves once the first lookup is done or has failed
   * (failures are logged, not thrown: a name that does not resolve yet finds nobody, and
   * the node originates). Throws only for what can never work (a plugin that cannot load).
   */
  start (): Promise<void>
  /** Stops looking. Idempotent. */
  stop (): Promise<void>
  /** The addresses found by the last successful lookup. Never blocks. */
  peers (): string[]
  /** Emits 'change' (peers: string[]) when the set of addresses changes. */
  readonly events: EventEmitter
}

/** What a discovery method may use. */
export interface DiscoveryComponents {
  log: Logger
  /** The node's data directory (the git method keeps its repository under it). */
  dataDir: string
  /** The node id, sent to servers as `origin-node/<id>`. */
  nodeId: string
  /** The port of this node's listen address: the port A/AAAA records are paired with by default. */
  listenPort: number
  /** When polled methods look again, and how long the first lookups may hold up the start. @default systemClock */
  clock?: Clock
}

/** Every method is a factory of this shape: options first, then what it needs. */
export type DiscoveryFactory<Init> = (init: Init) => (components: DiscoveryComponents) => Discovery
