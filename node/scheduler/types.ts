/** The scheduler's answer: the cluster's phase, who runs what, and what could not be placed. */
import type { BelowMinNodes } from '../desired/types'

/**
 * `forming`: fewer members up than `minNodes`, and the cluster never ran; nothing starts.
 * `running`: at least `minNodes` members up.
 * `degraded`: the cluster ran and fell below `minNodes`; `policy` says what the supervisor
 * does with the workloads meanwhile (pause, stop, or keep them).
 * `alive` counts alive and suspect members (see `schedule`). `reason` is for a person,
 * e.g. `forming: 2 of 3 nodes`, `degraded: 1 of 3 nodes, services paused`.
 */
export type Phase =
  | { kind: 'forming', alive: number, minNodes: number, reason: string }
  | { kind: 'running', alive: number, minNodes: number, reason: string }
  | { kind: 'degraded', alive: number, minNodes: number, policy: BelowMinNodes, reason: string }

export type PhaseKind = Phase['kind']

/**
 * One service instance on one node. Instance ids: `web-0` … `web-(N-1)` for replicas,
 * `coordinator-0` for a singleton, `agent@<nodeId>` for `every` and `hubs`.
 */
export interface Assignment {
  service: string
  instance: string
  node: string
}

/**
 * What could not be placed, and why in words (`needs 4096 MB, largest free is 2048 MB on
 * node-b`). `instance` is absent when no instance of the service could be named (an
 * `every` or `hubs` service that no node matches).
 */
export interface Unschedulable {
  service: string
  instance?: string
  reason: string
}

export interface Schedule {
  phase: Phase
  /** Sorted by service, then instance (replica index numerically, `@node` by node id). */
  assignments: Assignment[]
  /** Same order as `assignments`; service-level entries (no instance) first within a service. */
  unschedulable: Unschedulable[]
}

/** What `diffAssignments` reports; `moved` entries name the service too. */
export interface AssignmentDiff {
  moved: Array<{ service: string, instance: string, from: string, to: string }>
  added: Assignment[]
  removed: Assignment[]
}
