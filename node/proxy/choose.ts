/**
 * Pure: which instances a forwarded connection may go to, and which one it goes to.
 * Ready instances only, on alive members; this node's own first, then the one with the
 * fewest connections open through this node, taking turns among equals.
 *
 * An instance on a suspect member is excluded, not merely put last: its member has not
 * been heard from, so a connection sent there most likely hangs until a connect timeout,
 * and the API (which lists the same instances) must not tell apps to use it. The proxy
 * waits a moment for a ready target instead (the suspicion refuted, or the instance
 * started elsewhere); a key owned by it goes to another owner meanwhile.
 */
import type { MemberTable } from '../membership/types'
import { instanceState } from '../vocabulary'
import { serviceOfInstance as serviceOf } from '../scheduler'
import { compareInstances } from '../vocabulary'

export interface Target {
  instance: string
  node: string
  /** `host:port` of its first port, as its node announces it. */
  address: string
}

/** Ready instances of `service` in the member table. */
export function readyTargets (table: MemberTable, service: string): Target[] {
  const out: Target[] = []
  for (const m of Object.values(table)) {
    for (const [instance, s] of Object.entries(m.instances ?? {})) {
      if (instanceState(m.status, s.state) !== 'ready' || s.address === undefined || serviceOf(instance) !== service) continue
      out.push({ instance, node: m.id, address: s.address })
    }
  }
  return out.sort((a, b) => compareInstances(a.instance, b.instance))
}

/**
 * Instances of `service` their own member last said were ready while that member is
 * suspect: for a request that would otherwise be refused at once (HTTP), a member that is
 * only slow (a suspicion it refutes a moment later) still serves it; a dead one fails it
 * as the refusal would have.
 */
export function suspectTargets (table: MemberTable, service: string): Target[] {
  const out: Target[] = []
  for (const m of Object.values(table)) {
    if (m.status !== 'suspect') continue
    for (const [instance, s] of Object.entries(m.instances ?? {})) {
      if (s.state === 'ready' && s.address !== undefined && serviceOf(instance) === service) out.push({ instance, node: m.id, address: s.address })
    }
  }
  return out.sort((a, b) => compareInstances(a.instance, b.instance))
}

/**
 * The target for a new connection: this node's own first (unless `preferLocal` is false),
 * then the fewest open connections; among equals the `turn`-th (a counter the caller
 * raises), so short connections still take turns.
 */
export function choose (targets: Target[], self: string, open: (instance: string) => number, preferLocal = true, turn = 0): Target | undefined {
  let best: Target[] = []
  let bestKey: [number, number] | undefined
  for (const t of targets) {
    const key: [number, number] = [preferLocal && t.node === self ? 0 : 1, open(t.instance)]
    if (bestKey === undefined || key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) { best = [t]; bestKey = key } else if (key[0] === bestKey[0] && key[1] === bestKey[1]) best.push(t)
  }
  return best.length === 0 ? undefined : best[turn % best.length]
}
