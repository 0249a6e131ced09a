/** The hubs layer's contract: its policy (how many hubs, how members are ranked), the layer, its events. Types and the policy's defaults only. */
import type { EventEmitter } from 'node:events'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import { RANK_KEYS, type RankKey } from '../vocabulary'

export type { RankKey }

export interface HubPolicy {
  /** How many hubs. All alive members are hubs while there are fewer. @default 3 */
  count: number
  /** Ranking keys, strongest first. @default ['memory', 'cpus', 'uptime', 'id'] */
  ranking: RankKey[]
  /**
   * Hysteresis: a member that is not a hub displaces the weakest current hub only when it
   * outranks it by more than this margin on memory (relative, 0.1 = 10 %) or has more cpus
   * with memory no lower than the margin. Larger: a steadier hub set, but a clearly better
   * newcomer waits for a hub to leave. @default 0.1
   */
  memoryMargin: number
}

export const defaultHubPolicy: HubPolicy = {
  count: 3,
  ranking: [...RANK_KEYS],
  memoryMargin: 0.1
}

export interface HubsInit {
  /** The hub policy; the spec's `cluster.hubs` replaces it once applied. @default defaultHubPolicy */
  policy?: Partial<HubPolicy>
}
export interface HubsComponents { membership: Pick<Membership, 'id' | 'table' | 'events' | 'setHubClaim'>, log: Logger }

export interface HubChange { hubs: string[], promoted: string[], demoted: string[] }

export interface HubsEvents {
  change: [HubChange]
}

export interface Hubs {
  start (): Promise<void>
  stop (): Promise<void>
  /** Current hub ids, strongest first. */
  current (): string[]
  isHub (): boolean
  policy (): HubPolicy
  /** Replace the policy (the spec may change it); the set is recomputed at once. */
  setPolicy (policy: Partial<HubPolicy>): void
  readonly events: EventEmitter<HubsEvents>
}
