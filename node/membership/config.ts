/**
 * The membership layer's options, every default in one place, each with the trade-off it
 * controls. The config layer validates what image.json may set (`membership`).
 */

export interface MembershipInit {
  /**
   * host:port of nodes to join through. Empty: originate. A function (discovery's
   * `peers()`) is asked each time seeds are tried, so addresses found later are tried
   * too; it must not block.
   */
  seeds: string[] | (() => string[])
  /** Time between gossip rounds. Shorter spreads news faster for more traffic. @default 200 */
  gossipIntervalMs?: number
  /** Peers contacted per round. @default 3 */
  fanout?: number
  /**
   * Silence before a member is suspect. Too short gives false suspicions on a loaded
   * machine; a suspect keeps its role, so this only delays nothing. @default 2500
   */
  suspectAfterMs?: number
  /**
   * Silence before a member is dead: its roles move elsewhere. Shorter fails over sooner
   * but risks declaring a slow member dead (it refutes and comes back). @default 5000
   */
  deadAfterMs?: number
  /** How often seeds that are not live members are tried again. @default 2000 */
  seedRetryMs?: number
  /** How long a graceful leave waits for peers to hear it. @default 1000 */
  leaveTimeoutMs?: number
  /**
   * Most members the table holds, and so the most entries a gossip frame may carry.
   * Bounds memory and the work per frame; past it new members are refused (and logged).
   * @default 1000
   */
  maxMembers?: number
  /**
   * Members unknown to this node taken from one frame to confirm by contacting them, and
   * the most such contacts (and re-checks) started per gossip round. More finds the
   * members of a large cluster sooner; fewer bounds what hostile frames make this node
   * dial. @default 16
   */
  maxNewPerFrame?: number
  /** Members heard of and not confirmed yet (or to re-check with the member itself), held at once. @default 64 */
  maxUnconfirmed?: number
  /**
   * How far a third party may raise a member's incarnation above the highest the member
   * gave this node itself (each refutation is +1). Larger relays more refutations in a
   * row without a direct contact; smaller limits how far a hostile peer can push a
   * member, and past it the member is asked directly. @default 16
   */
  incarnationSlack?: number
  /**
   * How far ahead of this node's clock an incarnation said about this node may be (an
   * earlier run of its id with a clock that was ahead); twice it, about any member, even
   * by the member itself (incarnations start at the member's clock). Past it the entry
   * is refused. Larger tolerates worse clocks; smaller bounds what a peer can claim.
   * @default 86400000 (a day)
   */
  maxClockAheadMs?: number
}

export const membershipDefaults = {
  gossipIntervalMs: 200,
  fanout: 3,
  suspectAfterMs: 2500,
  deadAfterMs: 5000,
  seedRetryMs: 2000,
  leaveTimeoutMs: 1000,
  maxMembers: 1000,
  maxNewPerFrame: 16,
  maxUnconfirmed: 64,
  incarnationSlack: 16,
  maxClockAheadMs: 86_400_000
}
