/**
 * The member table: what every node knows of every other, spread by gossip.
 *
 * Entries are versioned by (incarnation, status rank, heartbeat):
 * - `incarnation` is owned by the member: set at start (above any incarnation the cluster
 *   remembers for its id) and raised to refute what others say of it. Others relay a raise
 *   only a little above what the member told them itself (`hear.ts`), so it stays a safe
 *   integer and a live member can always refute.
 * - `status` may be lowered by anyone (alive -> suspect -> dead) at the same incarnation;
 *   `left` is said only by the member itself, on a graceful stop (or of a member already
 *   dead: an operator's `forget`, or an identity replaced at its address).
 * - `heartbeat` is raised by the member on every gossip round; it carries the member's
 *   own fields (address, characteristics, hub claim) and feeds failure detection.
 *
 * A node's table holds only members it (or they) have talked to directly: members heard
 * of from others wait outside it until then, so they never count anywhere.
 */

export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left'

export interface Characteristics {
  /** Number of cpus, measured or declared by image.json. */
  cpus: number
  /** Memory in MiB, measured or declared (a container sees the host's memory). */
  memoryMb: number
  /** `process.arch`, e.g. 'x64', 'arm64'. */
  arch: string
  /** Free-form labels from image.json. */
  labels: Record<string, string>
  /** When this incarnation started (ms since epoch); longer uptime = earlier. */
  startedAt: number
  /** Names of the secrets the node's image carries (never their values). */
  secrets?: string[]
  /**
   * How the node contains its instances: `pid-namespace` (nothing an instance starts
   * outlives it, however the node dies) or `process-group` (a process that leaves its
   * group may outlive its instance).
   */
  containment?: 'pid-namespace' | 'process-group'
  /**
   * What the node can run instances as: `process` always, `docker` when its Docker engine
   * answered at start (node/runtime/probe.ts). Container services are placed only where
   * `docker` is said; a node that says nothing runs processes only.
   */
  runtimes?: Array<'process' | 'docker'>
  /** The node certificate it runs with: its serial (to revoke one image) and when it expires (ms since epoch). */
  certificate?: { serial: string, notAfter: number }
  /** An operator drained the node (`cluster.drain`): it hosts no instances until undrained. Kept in its data dir across restarts. */
  drained?: boolean
  /**
   * Why the node says it cannot do its job (node/health: event loop delayed, data dir not
   * writable or full, supervisor not reconciling); absent while healthy. Said only by the
   * node itself, like its other characteristics, so it travels with them and needs no rule
   * of its own in the merge. At most `UNHEALTHY_MAX_CHARS` characters.
   */
  unhealthy?: string
}

/** Longest `Characteristics.unhealthy` a node says, and peers accept. */
export const UNHEALTHY_MAX_CHARS = 300

export interface Member {
  id: string
  /** host:port of the member's mesh listener. */
  address: string
  incarnation: number
  heartbeat: number
  status: MemberStatus
  characteristics: Characteristics
  /** True while the member holds the hub role by its own computation; the hub policy's hysteresis reads it. */
  hub: boolean
  /** The spec version the member runs (a commit id, or `dir:<digest>` for a local directory); absent before the first. */
  spec?: string
  /**
   * The service instances this member runs, by instance id: the version it runs and its
   * state (`starting`, `ready`, ...). Other nodes read it to hand a singleton over without
   * running it twice and to replace instances one at a time.
   */
  instances?: Record<string, InstanceSummary>
}

export interface InstanceSummary {
  /** Version of the service definition + code the instance runs. */
  version: string
  /** State, as the supervisor names it. */
  state: string
  /** Generation of the instance's state directory (it grows each time the instance moves). */
  generation?: number
  /** Where other nodes reach it (`host:port` of its first port). */
  address?: string
  /** Its ports by name, when it has more than one (the first is also in `address`). */
  ports?: Record<string, number>
}

/** Member id -> entry. Plain object so it crosses the wire as is. */
export type MemberTable = Record<string, Member>

/** What the membership layer emits (`Membership.events`). */
export interface MembershipEvents {
  /** The table changed (a member joined, changed status, or said something new about itself). */
  change: [MemberTable]
  /** This node downed dead members (made them `left`), and which strategy let it. */
  downed: [{ ids: string[], strategy: string, reason: string }]
  /** The downing strategy keeps this node from downing the dead; said once per reason. */
  holding: [{ strategy: string, reason: string }]
}
