/**
 * The membership layer's options, every default in one place, each with the trade-off it
 * controls. The config layer validates what image.json may set (`membership`).
 *
 * Failure detection is SWIM with Lifeguard's refinements (see swim.ts). With the defaults,
 * on a quiet LAN, a crashed member of a small cluster is dead everywhere in about
 * `suspectAfterMs` + two or three protocol periods, and never later than about
 * `deadAfterMs` + `gossipIntervalMs` × (members) (the last member to probe it) unless
 * this node is itself overloaded (its local health stretches its probe timeouts).
 * A member is never declared dead sooner than `suspectAfterMs` after it stopped
 * answering: the supervisor's fencing reads that bound.
 */

export interface MembershipInit {
  /**
   * host:port of nodes to join through. Empty: originate. A function (discovery's
   * `peers()`) is asked each time seeds are tried, so addresses found later are tried
   * too; it must not block.
   */
  seeds: string[] | (() => string[])
  /**
   * The protocol period: each period this node probes one member (round-robin over a
   * shuffled list) and sends the changes it has queued. Shorter detects sooner and spreads
   * news faster, for more messages (1 + `fanout` pings a period, and as many acks).
   * @default 200
   */
  gossipIntervalMs?: number
  /**
   * Members pinged each period besides the probed one while this node has changes queued
   * (they carry them), and twice as many while a singleton runs or waits here (the
   * supervisor's quorum reads `reachable(fence window)`); none in an idle period. More
   * spreads a change in fewer periods and keeps a singleton's node in touch with more
   * members within the fence window, for more messages. @default 3
   */
  fanout?: number
  /**
   * The least time a suspect member has to refute before it is dead: Lifeguard's minimum
   * suspicion timeout, reached once `suspicionConfirmations` other members suspect it
   * too. Detection takes at least this long after a crash; shorter fails over sooner but
   * gives a slow member (a paused VM, a GC pause, an overloaded machine) less time to
   * answer. The supervisor fences its singletons after this long out of touch, which is
   * why no member is ever dead sooner; a singleton's node talks to some 2 × (1 + `fanout`)
   * members a period, so for it to be in touch with a majority within this time keep it above
   * about members × `gossipIntervalMs` / 5 (600 ms: up to some 20 members). @default 600
   */
  suspectAfterMs?: number
  /**
   * The most time a suspect has to refute: the suspicion timeout when this node alone
   * suspects it. Between the two, each independent confirmation shortens it (log scale).
   * Longer protects a member only one node cannot reach (a one-way link, a flaky
   * route); shorter bounds detection when few others probe it. @default 2000
   */
  deadAfterMs?: number
  /**
   * How long a direct probe waits for its ack before asking others to probe the member
   * (scaled by this node's local health). Shorter leaves more of the period for indirect
   * probes; too short on a loaded machine makes every probe indirect. @default 80
   */
  probeTimeoutMs?: number
  /**
   * Members asked to probe a member that missed its direct ack (`mesh.ping-req`). More
   * rides over more broken links between this node and the member, for k more messages
   * per missed ack. @default 3
   */
  indirectProbes?: number
  /**
   * Independent suspicions that bring the suspicion timeout down to its minimum. More
   * needs more of the cluster to agree before the shortest timeout, so a member only a
   * few cannot reach keeps longer; fewer detects sooner. Below 1, or in a cluster of
   * fewer than this + 2 members, the timeout is the minimum at once. @default 2
   */
  suspicionConfirmations?: number
  /**
   * How far this node's local health (Lifeguard's LHM) may stretch its probe timeouts:
   * each missed ack, missed nack or refuted suspicion of itself raises it by one up to
   * this, each timely ack lowers it by one; timeouts are multiplied by (1 + health).
   * Larger keeps an overloaded node from suspecting healthy members longer; smaller keeps
   * its detection faster. @default 8
   */
  maxLocalHealth?: number
  /**
   * Times each change is sent is this × ceil(log10(members + 1)) (memberlist's retransmit
   * multiplier). More makes a change reach everyone more surely under loss, for more
   * bytes per change. @default 4
   */
  retransmitMult?: number
  /** Most changes carried by one message. Bounds a message's size. @default 16 */
  maxDeltasPerMessage?: number
  /**
   * A full table exchange (push-pull) with one random member this often, to repair what
   * deltas missed (in clusters above 32 members stretched by log2(members / 32), as
   * memberlist does: each exchange carries the whole table). Shorter repairs sooner for
   * bytes that grow with the table. @default 5000
   */
  pushPullIntervalMs?: number
  /** How often seeds that are not live members are tried again. @default 2000 */
  seedRetryMs?: number
  /**
   * How long joining, as the node starts, waits for a seed that took the connection to
   * answer. Longer: a node whose seed is slow (loaded, still starting) joins it instead of
   * originating a second cluster, which merges later but meanwhile runs its own hubs,
   * fetches the spec and starts singletons; shorter: a node whose seeds hang starts
   * sooner (a seed that refuses the connection fails at once either way). @default 5000
   */
  joinTimeoutMs?: number
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

/**
 * The settings image.json `membership` may set. The others bound what peers can make this
 * node hold or believe; they are not a deployment's choice.
 */
export const MEMBERSHIP_SETTINGS = ['gossipIntervalMs', 'fanout', 'suspectAfterMs', 'deadAfterMs', 'seedRetryMs', 'joinTimeoutMs', 'probeTimeoutMs', 'indirectProbes', 'suspicionConfirmations', 'maxLocalHealth', 'retransmitMult', 'maxDeltasPerMessage', 'pushPullIntervalMs', 'leaveTimeoutMs', 'maxMembers'] as const
export type MembershipSettings = Pick<MembershipInit, typeof MEMBERSHIP_SETTINGS[number]>

/** Every default of `MembershipInit`; node/config reads the settable ones from here. */
export const membershipDefaults: Readonly<Required<Omit<MembershipInit, 'seeds'>>> = {
  gossipIntervalMs: 200,
  fanout: 3,
  suspectAfterMs: 600,
  deadAfterMs: 2000,
  probeTimeoutMs: 80,
  indirectProbes: 3,
  suspicionConfirmations: 2,
  maxLocalHealth: 8,
  retransmitMult: 4,
  maxDeltasPerMessage: 16,
  pushPullIntervalMs: 5000,
  seedRetryMs: 2000,
  joinTimeoutMs: 5000,
  leaveTimeoutMs: 1000,
  maxMembers: 1000,
  maxNewPerFrame: 16,
  maxUnconfirmed: 64,
  incarnationSlack: 16,
  maxClockAheadMs: 86_400_000
}

const ms = { type: 'integer', minimum: 10, maximum: 3_600_000 }

/** The JSON Schema of image.json's `membership`: a bound for each of `MEMBERSHIP_SETTINGS`, none else. */
export const membershipSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    gossipIntervalMs: ms,
    fanout: { type: 'integer', minimum: 1, maximum: 64 },
    suspectAfterMs: ms,
    deadAfterMs: ms,
    seedRetryMs: ms,
    joinTimeoutMs: ms,
    probeTimeoutMs: ms,
    indirectProbes: { type: 'integer', minimum: 0, maximum: 16 },
    suspicionConfirmations: { type: 'integer', minimum: 0, maximum: 64 },
    maxLocalHealth: { type: 'integer', minimum: 0, maximum: 64 },
    retransmitMult: { type: 'integer', minimum: 1, maximum: 64 },
    maxDeltasPerMessage: { type: 'integer', minimum: 1, maximum: 1024 },
    pushPullIntervalMs: ms,
    leaveTimeoutMs: ms,
    maxMembers: { type: 'integer', minimum: 1, maximum: 100_000 }
  } satisfies Record<typeof MEMBERSHIP_SETTINGS[number], object>
}
