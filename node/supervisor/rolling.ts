/**
 * Pure rules the supervisor applies with what gossip tells it about other nodes'
 * instances: when a changed instance may be replaced (one at a time across the cluster),
 * and whether a singleton still runs somewhere else (hand over without running twice).
 */
import type { MemberTable } from '../membership'
import type { Assignment } from '../scheduler'

const gone = new Set(['stopped', 'failed'])

/** The state and version of `instance` wherever a live member says it runs it (other than `self`). */
export function runningElsewhere (table: MemberTable, instance: string, self: string): Array<{ node: string, v: string, s: string }> {
  return Object.values(table)
    .filter((m) => m.id !== self && (m.status === 'alive' || m.status === 'suspect'))
    .flatMap((m) => {
      const i = m.instances?.[instance]
      return i === undefined || gone.has(i.s) ? [] : [{ node: m.id, v: i.v, s: i.s }]
    })
}

/**
 * A changed instance is replaced only when every instance of its service that sorts
 * before it already runs the new version and is ready, so the service keeps serving while
 * it is replaced instance by instance.
 */
export function mayReplace (
  instance: string,
  version: string,
  assignments: Assignment[],
  table: MemberTable,
  local: (instance: string) => { v: string, s: string } | undefined
): { ok: boolean, waitingFor?: string } {
  const service = assignments.find((a) => a.instance === instance)?.service
  const before = assignments.filter((a) => a.service === service && a.instance < instance)
  for (const a of before) {
    const s = local(a.instance) ?? table[a.node]?.instances?.[a.instance]
    if (s === undefined || s.v !== version || s.s !== 'ready') return { ok: false, waitingFor: a.instance }
  }
  return { ok: true }
}
