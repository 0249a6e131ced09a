/**
 * `origin/spec`: what a TS spec file imports so the operator's editor checks it.
 *
 * @example
 *   // services/agent.ts
 *   import { defineService } from 'origin/spec'
 *   export default defineService({ run: { command: 'node', args: ['services/agent/agent.js'] }, placement: { kind: 'every' } })
 *
 * The helpers return their argument unchanged: the loader validates the value against the
 * JSON Schema either way. Inside the loader's sandbox a copy of these identity functions
 * made in the sandbox stands in for this module (see sandbox.ts), so keep them identities.
 */
import type { ClusterSpec, ServiceSpec } from './types'

export type {
  BelowMinNodes, ClusterSpec, CodeSpec, HealthSpec, HubsSpec, PlacementKind, PlacementSpec,
  ResolvedClusterSpec, ResourcesSpec, RestartSpec, RunSpec, ServiceSpec, Spec, SpecError
} from './types'
export type { RankKey } from '../hubs/policy'

/** `cluster.ts`: `export default defineCluster({ name: 'prod', minNodes: 3 })`. */
export function defineCluster (cluster: ClusterSpec): ClusterSpec {
  return cluster
}

/** `services/<name>.ts`: `export default defineService({ run: {...}, placement: {...} })`. */
export function defineService (service: ServiceSpec): ServiceSpec {
  return service
}
