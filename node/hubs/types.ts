/** The hubs layer's contract: its policy (how many hubs, how members are ranked), the layer, its events. Types and the policy's defaults only. */
import type { EventEmitter } from 'node:events'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { HubPolicy } from './policy'

export { defaultHubPolicy, type HubPolicy, type RankKey } from './policy'

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
