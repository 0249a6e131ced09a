/**
 * Pure: what the local API answers about a service, from the member table alone, so every
 * node answers the same. Ready instances are the proxy's (`readyTargets`) and a key's owner
 * is the proxy's (`owner`, rendezvous hashing over them): the API never disagrees with
 * where the proxy sends a request. An instance on a suspect member is `unknown` and on a
 * dead one `lost` (`instanceState`), never ready.
 */
import type { MemberTable } from '../membership/types'
import { owner, readyTargets } from '../proxy'
import { instanceState } from '../vocabulary'
import { serviceOfInstance } from '../scheduler'
import { hostOf } from '../address'
import { compareIds, compareInstances } from '../vocabulary'

export interface InstanceAddress {
  instance: string
  node: string
  /** `host:port` of the instance's first port, as its node announces it. */
  address: string
  host: string
  port: number
  /** Ports by name, as the instance's node announces them (one port: named after the spec's first, `main` by default). */
  ports: Record<string, number>
}

/** The ready instances of `service`, sorted by instance id. `firstPort` names the first port. */
export function readyInstances (table: MemberTable, service: string, firstPort = 'main'): InstanceAddress[] {
  return readyTargets(table, service).map((t) => {
    const port = Number(/:(\d+)$/.exec(t.address)?.[1] ?? 0)
    const named = table[t.node]?.instances?.[t.instance]?.ports
    return { instance: t.instance, node: t.node, address: t.address, host: hostOf(t.address), port, ports: named ?? { [firstPort]: port } }
  })
}

export interface InstancePlace {
  instance: string
  node: string
  /** `host:port` of its first port ('' when its node has not said). */
  address: string
  host: string
  port: number
  /** As its node says it while alive; `unknown` while the node is suspect, `lost` once dead. */
  state: string
}

/** Every instance of `service` the table knows of, on members not gone (`left`), by instance id then node. */
export function whereInstances (table: MemberTable, service: string): InstancePlace[] {
  return Object.values(table).filter((m) => m.status !== 'left').flatMap((m) =>
    Object.entries(m.instances ?? {})
      .filter(([id]) => serviceOfInstance(id) === service)
      .map(([instance, s]) => ({
        instance,
        node: m.id,
        address: s.address ?? '',
        host: s.address === undefined ? hostOf(m.address) : hostOf(s.address),
        port: Number(/:(\d+)$/.exec(s.address ?? '')?.[1] ?? 0),
        state: instanceState(m.status, s.state)
      })))
    .sort((a, b) => compareInstances(a.instance, b.instance) || compareIds(a.node, b.node))
}

/** The ready instance that owns `key` (the one the proxy's keyed routing picks), or undefined when none is ready. */
export function ownerOf (table: MemberTable, service: string, key: string, firstPort = 'main'): InstanceAddress | undefined {
  const ready = readyInstances(table, service, firstPort)
  const id = owner(key, ready.map((i) => i.instance))
  return ready.find((i) => i.instance === id)
}
