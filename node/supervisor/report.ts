/**
 * What the supervisor says about its instances, as pure functions of what it holds: the
 * report for operators (cluster.services(), the REPL) and the summaries it announces in
 * the member table.
 */
import type { InstanceSummary } from '../membership/types'
import { serviceOfInstance } from '../scheduler'
import type { Instance } from './launch'
import type { InstanceReport } from './types'
import { compareInstances } from '../vocabulary'

/** Running instances, then those assigned here and waiting (`pending`, with the reason), by id. */
export function reportOf (nodeId: string, instances: Iterable<Instance>, waiting: ReadonlyMap<string, string>, logPathOf: (instance: string) => string): InstanceReport[] {
  const runs = [...instances]
  const here = new Set(runs.map((i) => i.assignment.instance))
  const running = runs.map((i): InstanceReport => ({
    instance: i.assignment.instance,
    service: i.assignment.service,
    node: nodeId,
    version: i.version,
    status: i.proc.status(),
    port: i.ports[0]?.[1] ?? 0,
    ports: Object.fromEntries(i.ports),
    address: i.address,
    logPath: i.logPath,
    rollout: waiting.get(i.assignment.instance),
    state: i.stateNote
  }))
  const pending = [...waiting].filter(([id]) => !here.has(id)).map(([id, reason]): InstanceReport => ({
    instance: id,
    service: serviceOfInstance(id),
    node: nodeId,
    version: '',
    status: { state: 'pending', restarts: 0, reason },
    port: 0,
    ports: {},
    address: '',
    logPath: logPathOf(id)
  }))
  return [...running, ...pending].sort((a, b) => compareInstances(a.instance, b.instance))
}

/**
 * What the member table says this node runs. An instance being replaced stays announced
 * as such (`held`) even once its old process stopped, so the schedule keeps it here rather
 * than sending it back to its rendezvous "home".
 */
export function summariesOf (instances: ReadonlyMap<string, Instance>, held: ReadonlyMap<string, InstanceSummary>): Record<string, InstanceSummary> {
  const out: Record<string, InstanceSummary> = {}
  for (const [id, i] of instances) {
    out[id] = { version: i.version, state: i.proc.status().state, address: i.address, ...(i.generation === undefined ? {} : { generation: i.generation }), ...(i.ports.length > 1 ? { ports: Object.fromEntries(i.ports) } : {}) }
  }
  for (const [id, h] of held) out[id] = h
  return out
}
