/** The cluster's phase: a pure function of how many members are up, the spec, and the last phase. */
import type { BelowMinNodes, ResolvedClusterSpec } from '../desired/types'
import type { Phase, PhaseKind } from './types'

const policyWords: Record<BelowMinNodes, string> = {
  pause: 'services paused',
  stop: 'services stopped',
  keep: 'services kept running'
}

/**
 * `running` when `alive >= minNodes`. Below it: `degraded` if the cluster was `running` or
 * `degraded` (it ran once, so its workloads are paused, stopped or kept as
 * `cluster.belowMinNodes` says), otherwise `forming` (nothing has started yet). A degraded
 * cluster goes back to `running` as soon as enough members return.
 *
 * `previous` is the phase this node computed last (undefined at start), so a node that
 * restarts below `minNodes` says `forming` until the cluster reaches `minNodes` again.
 */
export function computePhase (alive: number, cluster: ResolvedClusterSpec, previous: PhaseKind | undefined): Phase {
  const minNodes = cluster.minNodes
  if (alive >= minNodes) {
    return { kind: 'running', alive, minNodes, reason: `running: ${nodes(alive)} (minNodes ${minNodes})` }
  }
  if (previous === 'running' || previous === 'degraded') {
    const policy = cluster.belowMinNodes
    return { kind: 'degraded', alive, minNodes, policy, reason: `degraded: ${alive} of ${minNodes} nodes, ${policyWords[policy]}` }
  }
  return { kind: 'forming', alive, minNodes, reason: `forming: ${alive} of ${minNodes} nodes` }
}

function nodes (n: number): string {
  return n === 1 ? '1 node' : `${n} nodes`
}
