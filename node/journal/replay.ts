/**
 * The cluster at a past moment, rebuilt from journal entries alone: pure (no clock, no I/O),
 * so `cluster.state({ at })` and its tests read the same function.
 *
 * @example
 *   const s = replay(await readAll(), Date.parse('2026-05-01T14:00:00Z'))
 *   s.members['node-2'].status   // 'dead'
 */
import type { MemberStatus } from '../membership'
import { compareEvents, type JournalEvent, type MemberFacts } from './types'
import { compareIds, compareInstances } from '../vocabulary'

export interface ReplayedInstance { instance: string, service: string, node: string, version: string, state: string, reason?: string, address?: string, restarts: number, since: number }

export interface Replayed {
  at: number
  /** `unhealthy`: why the member said it could not do its job, while it said so. */
  members: Record<string, MemberFacts & { status: MemberStatus, since: number, unhealthy?: string }>
  hubs: string[]
  /** The last spec applied anywhere, and which version each node applied last. */
  spec?: { version: string, summary: string, services: string[] }
  specByNode: Record<string, string>
  lastRejected?: { version: string, summary: string, errors: string[], node: string, at: number }
  phase?: string
  /** Instances running (in any state but stopped) at `at`, by instance id and node. */
  instances: ReplayedInstance[]
}

/**
 * Applies every entry at or before `at`, in time order. A member's status is the last one
 * any node recorded. An instance is gone once stopped, when its node starts again (a
 * restart ends every instance), and while its node is dead or has left.
 */
export function replay (events: readonly JournalEvent[], at: number): Replayed {
  const out: Replayed = { at, members: {}, hubs: [], specByNode: {}, instances: [] }
  const instances = new Map<string, ReplayedInstance>()
  const key = (node: string, instance: string): string => `${node}\0${instance}`
  const dropNode = (node: string): void => { for (const [k, i] of instances) if (i.node === node) instances.delete(k) }
  for (const e of [...events].filter((x) => x.at <= at).sort(compareEvents)) {
    switch (e.kind) {
      case 'node':
        dropNode(e.node)
        if (e.what === 'started' && out.members[e.node] !== undefined) out.members[e.node] = { ...out.members[e.node]!, status: 'alive', since: e.at }
        break
      case 'member': {
        const prev = out.members[e.member]
        if (prev !== undefined && prev.status === e.status) break
        out.members[e.member] = { ...prev, ...e.facts, status: e.status, since: e.at }
        // Its word on its health ends with it (a member that comes back says it again).
        if (e.status === 'dead' || e.status === 'left') delete out.members[e.member]?.unhealthy
        if (e.status === 'dead' || e.status === 'left') dropNode(e.member)
        break
      }
      case 'health': {
        const prev = out.members[e.member]
        if (prev === undefined) break
        const { unhealthy: _was, ...rest } = prev
        out.members[e.member] = e.unhealthy === undefined ? rest : { ...rest, unhealthy: e.unhealthy }
        break
      }
      case 'hubs': out.hubs = e.hubs; break
      case 'spec-applied':
        out.spec = { version: e.version, summary: e.summary, services: e.services }
        out.specByNode[e.node] = e.version
        break
      case 'spec-rejected': out.lastRejected = { version: e.version, summary: e.summary, errors: e.errors, node: e.node, at: e.at }; break
      case 'phase': out.phase = e.reason; break
      case 'instance':
        if (e.state === 'stopped') instances.delete(key(e.node, e.instance))
        else {
          const prev = instances.get(key(e.node, e.instance))
          instances.set(key(e.node, e.instance), {
            instance: e.instance, service: e.service, node: e.node, version: e.version, state: e.state, reason: e.reason, address: e.address, restarts: e.restarts,
            since: prev?.state === e.state ? prev.since : e.at
          })
        }
        break
      default: break
    }
  }
  out.instances = [...instances.values()].sort((a, b) => compareInstances(a.instance, b.instance) || compareIds(a.node, b.node))
  return out
}
