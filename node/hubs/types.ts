/** Hub policy: how many hubs, and how members are ranked for the role. */

export type RankKey = 'memory' | 'cpus' | 'uptime' | 'id'

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
  ranking: ['memory', 'cpus', 'uptime', 'id'],
  memoryMargin: 0.1
}
