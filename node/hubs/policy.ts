/**
 * The hub policy and its defaults, apart from the hubs layer's contract: the spec's types
 * (node/desired/types.ts, which an operator's editor checks spec files against through
 * `origin/spec`) need it without the layers behind the contract.
 */
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
