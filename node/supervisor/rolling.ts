/**
 * Pure rules the supervisor applies with what gossip tells it: when a changed instance may
 * be replaced (one at a time across the cluster), whether a singleton still runs somewhere
 * else (hand over without running twice), and whether this side of a partition may run
 * singletons at all (keep-majority).
 */
import type { MemberTable } from '../membership'
import { compareAssignments, type Assignment } from '../scheduler'

const gone = new Set(['stopped', 'failed'])

/**
 * The state and version of `instance` wherever another member says it runs it. A member
 * marked dead still counts while this node has been in touch with it lately: a stale "dead"
 * can arrive by gossip (from a node back from a partition) before the member refutes it.
 */
export function runningElsewhere (table: MemberTable, instance: string, self: string, inTouch: ReadonlySet<string> = new Set()): Array<{ node: string, version: string, state: string }> {
  return Object.values(table)
    .filter((m) => m.id !== self && (m.status === 'alive' || m.status === 'suspect' || (m.status === 'dead' && inTouch.has(m.id))))
    .flatMap((m) => {
      const i = m.instances?.[instance]
      return i === undefined || gone.has(i.state) ? [] : [{ node: m.id, version: i.version, state: i.state }]
    })
}

/**
 * A changed instance is replaced only when every instance of its service that sorts
 * before it already runs the new version and is ready, so the service keeps serving while
 * it is replaced instance by instance. Instances sort as the schedule lists them (by
 * number: web-9 before web-10), so every node agrees on the order.
 */
export function mayReplace (
  instance: string,
  version: string,
  assignments: Assignment[],
  table: MemberTable,
  local: (instance: string) => { version: string, state: string } | undefined
): { ok: boolean, waitingFor?: string } {
  const service = assignments.find((a) => a.instance === instance)?.service
  const before = assignments.filter((a) => a.service === service && compareAssignments(a, { service, instance }) < 0)
  for (const a of before) {
    const s = local(a.instance) ?? table[a.node]?.instances?.[a.instance]
    if (s === undefined || s.version !== version || s.state !== 'ready') return { ok: false, waitingFor: a.instance }
  }
  return { ok: true }
}

/**
 * Keep-majority for singletons: a node runs singletons only while it has been in touch
 * (gossip, either way, recently) with more than half of the members that have not left,
 * itself included; at exactly half, the side with the lowest id keeps them (so a 2-node
 * cluster fails over). A node cut off from the majority gives its singletons up once it
 * has not heard from them for the suspicion timeout, before the majority declares it dead
 * (the longer failure timeout) and starts them elsewhere: one never runs twice. Members
 * that left gracefully, were forgotten by an operator or were downed (membership's
 * downing.ts makes them `left`) do not count: the survivors of crashes one at a time
 * regain a majority by themselves. With the `lease` downing strategy (`lowestIdBreaksTies`
 * false) the lease is the tie-breaker instead: at exactly half, a side waits until its
 * lease holder has downed the other half, for the lowest id may be on the side that lost.
 * And while the lease is held by a member this node does not see alive (`leaseHolder`),
 * the other side has won it and may down this one: no singleton here, majority or not.
 */
export function singletonQuorum (table: MemberTable, self: string, reachable: ReadonlySet<string>, lowestIdBreaksTies = true, leaseHolder?: string): { ok: boolean, reason: string } {
  if (leaseHolder !== undefined && leaseHolder !== self && !['alive', 'suspect'].includes(table[leaseHolder]?.status ?? 'gone')) {
    return { ok: false, reason: `the downing lease is held by ${leaseHolder}, which this node does not see alive: the other side won it, so no singleton runs on this side` }
  }
  const members = Object.values(table).filter((m) => m.status !== 'left')
  const inTouch = members.filter((m) => m.id === self || reachable.has(m.id))
  const seen = `in touch with ${inTouch.length} of ${members.length} members`
  if (inTouch.length * 2 > members.length) return { ok: true, reason: `${seen}: a majority` }
  if (inTouch.length * 2 === members.length && lowestIdBreaksTies) {
    const lowest = members.map((m) => m.id).sort()[0]
    if (inTouch.some((m) => m.id === lowest)) return { ok: true, reason: `${seen}: half, with the lowest id (${lowest})` }
  }
  return { ok: false, reason: `${seen}: not a majority, so no singleton runs on this side` }
}
