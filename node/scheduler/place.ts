/**
 * Placement: which host runs each service instance. Pure: no clock, no I/O, no randomness
 * (sha256 is a fixed function of its input).
 *
 * Services are placed in a fixed order so that memory use is deterministic: `every`, then
 * `hubs` (both node-bound), then `singleton`, then `replicas`; within a kind by service
 * name; instances by index. Each host's memory budget is its `characteristics.memoryMb`;
 * each instance reserves its service's `resources.memoryMb` (default 0) on its host.
 *
 * Singletons and replicas use rendezvous (highest-random-weight) hashing: instance `i`
 * goes to the host with capacity that scores highest for `i`, preferring the hosts that run
 * the fewest instances of the same service (spreading). `maxInstancesPerNode` defaults to 1,
 * as the spec documents, so by default no two replicas share a host.
 *
 * Stickiness: an instance that a qualifying host runs now (its member entry lists it,
 * not stopped or failed) stays there, placed before any other; only the rest go by
 * rendezvous. So a host leaving moves only its own instances, a host joining moves nothing,
 * and a returning node does not pull a singleton back. This is still a function of the
 * member table alone (the instances are in it), so every node computes the same.
 *
 * Without that information (a fresh cluster) the hash alone decides, and spreading costs
 * something no function of the host set can avoid: when replica `web-0` loses its host and
 * takes its next choice, that may be the host of `web-1`, which then moves too. (A
 * brute-force search finds no function of the host set that spreads 3 replicas over up to
 * 5 hosts and moves only the replicas of a host that left.)
 */
import { createHash } from 'node:crypto'
import type { Member } from '../membership/types'
import { compareIds } from '../membership/table'
import type { PlacementKind, PlacementSpec, ServiceSpec } from '../desired/types'
import type { Assignment, Unschedulable } from './types'

/** The secret names a service's env refers to: only nodes whose image carries them all may run it. */
export function secretsOf (svc: ServiceSpec): string[] {
  return Object.values(svc.run.env ?? {}).flatMap((v) => typeof v === 'string' ? [] : [v.secret]).sort()
}

export interface Placement {
  assignments: Assignment[]
  unschedulable: Unschedulable[]
}

const kindOrder: PlacementKind[] = ['every', 'hubs', 'singleton', 'replicas']

/**
 * Place every service on `hosts` (members that may run instances, sorted by id, no
 * duplicates). `hubs` are the ids of the hub set, each one also in `hosts`. Results come in
 * placement order; the caller sorts them.
 *
 * `unhealthy` hosts (ids) take a singleton or replica only when no healthy host can (see
 * `placeRanked`); node-bound instances (`every`, `hubs`) stay on them, having nowhere
 * else to go.
 */
export function placeServices (services: Record<string, ServiceSpec>, hosts: Member[], hubs: string[], unhealthy: ReadonlySet<string> = new Set()): Placement {
  const out: Placement = { assignments: [], unschedulable: [] }
  const free = new Map(hosts.map((m) => [m.id, m.characteristics.memoryMb]))
  const hubSet = new Set(hubs)
  const hubHosts = hosts.filter((m) => hubSet.has(m.id))
  const names = Object.keys(services).sort(compareIds)
  const portClash = publishedPortClashes(services, names)
  for (const kind of kindOrder) {
    for (const name of names) {
      const svc = services[name]
      if (svc.placement.kind !== kind) continue
      const clash = portClash.get(name)
      if (clash !== undefined) { out.unschedulable.push({ service: name, reason: clash }); continue }
      if (kind === 'every') placeOnEach(name, svc, hosts, 'alive node', free, out)
      else if (kind === 'hubs') placeOnEach(name, svc, hubHosts, 'hub', free, out)
      else placeRanked(name, svc, instanceIds(name, svc.placement), hosts, free, out, unhealthy)
    }
  }
  return out
}

/**
 * Services that publish a port another service already holds (publishes, or pins as one of
 * its ports): the first by name keeps it, the others are not placed, with the reason.
 */
export function publishedPortClashes (services: Record<string, ServiceSpec>, names = Object.keys(services).sort(compareIds)): Map<string, string> {
  const holders = new Map<number, string>()
  for (const name of names) {
    for (const [portName, p] of Object.entries(services[name].ports ?? {})) {
      if (p.port !== undefined && !holders.has(p.port)) holders.set(p.port, `${name} pins it as its port ${portName}`)
    }
  }
  const out = new Map<string, string>()
  for (const name of names) {
    const port = services[name].publish?.port
    if (port === undefined) continue
    const holder = holders.get(port)
    if (holder !== undefined && !holder.startsWith(`${name} `)) out.set(name, `publishes port ${port}, which is taken: ${holder}`)
    else holders.set(port, `${name} publishes it`)
  }
  return out
}

/** `every` / `hubs`: one instance `name@node` on each candidate that matches the selector. */
function placeOnEach (name: string, svc: ServiceSpec, candidates: Member[], noun: string, free: Map<string, number>, out: Placement): void {
  const matching = candidates.filter((m) => matches(svc, m))
  if (matching.length === 0) {
    out.unschedulable.push({ service: name, reason: noMatchReason(svc, candidates, noun) })
    return
  }
  const need = svc.resources?.memoryMb ?? 0
  for (const m of matching) {
    const instance = `${name}@${m.id}`
    const room = free.get(m.id) ?? 0
    if (room >= need) {
      free.set(m.id, room - need)
      out.assignments.push({ service: name, instance, node: m.id })
    } else {
      out.unschedulable.push({ service: name, instance, reason: `needs ${need} MB, ${m.id} has ${room} MB free` })
    }
  }
}

/**
 * `singleton` / `replicas`: each instance by rendezvous hashing over the matching hosts with
 * room, healthy hosts first: an instance on an unhealthy host moves when a healthy one can
 * take it, and unhealthy hosts take only what no healthy host can (so a cluster unhealthy
 * everywhere, say all under load, keeps running everything where it is rather than nowhere).
 */
function placeRanked (name: string, svc: ServiceSpec, instances: string[], hosts: Member[], free: Map<string, number>, out: Placement, unhealthy: ReadonlySet<string>): void {
  const matching = hosts.filter((m) => matches(svc, m))
  if (matching.length === 0) {
    const reason = noMatchReason(svc, hosts, 'alive node')
    for (const instance of instances) out.unschedulable.push({ service: name, instance, reason })
    return
  }
  const need = svc.resources?.memoryMb ?? 0
  const given = svc.resources?.maxInstancesPerNode
  const cap = given ?? 1
  const load = new Map<string, number>()
  let left = instances
  for (const tier of [matching.filter((m) => !unhealthy.has(m.id)), matching.filter((m) => unhealthy.has(m.id))]) {
    if (tier.length > 0 && left.length > 0) left = placeOn(name, left, tier, need, cap, free, load, out)
  }
  // What is left fits on no host, healthy or not: why, over all of them.
  const open = matching.filter((m) => (load.get(m.id) ?? 0) < cap)
  for (const instance of left) {
    if (open.length === 0) {
      const runs = cap === 1 ? '1 instance' : `${cap} instances`
      const why = `maxInstancesPerNode ${cap}${given == null ? ', the default' : ''}`
      out.unschedulable.push({ service: name, instance, reason: `every eligible node already runs ${runs} (${why})` })
    } else {
      out.unschedulable.push({ service: name, instance, reason: memoryReason(need, open, free) })
    }
  }
}

/** Places what it can of `instances` on `hosts` (sticky first, then by rendezvous); returns the rest, in order. */
function placeOn (name: string, instances: string[], hosts: Member[], need: number, cap: number, free: Map<string, number>, load: Map<string, number>, out: Placement): string[] {
  const take = (instance: string, node: string): void => {
    free.set(node, (free.get(node) ?? 0) - need)
    load.set(node, (load.get(node) ?? 0) + 1)
    out.assignments.push({ service: name, instance, node })
  }
  // Sticky first: an instance stays on the host that runs it (as the member table says)
  // while that host still qualifies, so a membership change moves only displaced instances.
  const placed = new Set<string>()
  for (const instance of instances) {
    const node = currentHost(instance, hosts, need, cap, free, load)
    if (node === undefined) continue
    take(instance, node)
    placed.add(instance)
  }
  const left: string[] = []
  for (const instance of instances) {
    if (placed.has(instance)) continue
    const roomy = hosts.filter((m) => (load.get(m.id) ?? 0) < cap && (free.get(m.id) ?? 0) >= need)
    if (roomy.length === 0) { left.push(instance); continue }
    take(instance, pick(instance, roomy, load))
  }
  return left
}

const finished = new Set(['stopped', 'failed'])

/**
 * The qualifying host with room that runs `instance` now. Should two say so (a node back
 * from a pause still announcing the copy it ran before it was replaced), the newer run
 * wins: the higher state generation (it grows each time the instance starts on another
 * node), then the best score.
 */
function currentHost (instance: string, matching: Member[], need: number, cap: number, free: Map<string, number>, load: Map<string, number>): string | undefined {
  let best: { id: string, g: number, score: bigint } | undefined
  for (const m of matching) {
    const running = m.instances?.[instance]
    if (running === undefined || finished.has(running.state)) continue
    if ((load.get(m.id) ?? 0) >= cap || (free.get(m.id) ?? 0) < need) continue
    const g = running.generation ?? 0
    const s = score(instance, m.id)
    if (best === undefined || g > best.g || (g === best.g && (s > best.score || (s === best.score && compareIds(m.id, best.id) < 0)))) best = { id: m.id, g, score: s }
  }
  return best?.id
}

/** Among the hosts running the fewest instances of the service, the one scoring highest for `instance`. */
function pick (instance: string, roomy: Member[], load: Map<string, number>): string {
  const least = Math.min(...roomy.map((m) => load.get(m.id) ?? 0))
  let best: { id: string, score: bigint } | undefined
  for (const m of roomy) {
    if ((load.get(m.id) ?? 0) !== least) continue
    const s = score(instance, m.id)
    if (best === undefined || s > best.score || (s === best.score && compareIds(m.id, best.id) < 0)) best = { id: m.id, score: s }
  }
  // roomy is not empty, so some host has the least load
  return (best as { id: string }).id
}

/** The rendezvous weight of `node` for `instance`: the first 8 bytes of sha256, big-endian. */
export function score (instance: string, node: string): bigint {
  return createHash('sha256').update(`${instance}\n${node}`).digest().readBigUInt64BE(0)
}

function instanceIds (name: string, p: PlacementSpec): string[] {
  const n = p.kind === 'singleton' ? 1 : Math.max(0, Math.floor(p.count ?? 0))
  return Array.from({ length: n }, (_, i) => `${name}-${i}`)
}

// Selector fields are `== null` checked: the schema makes them nullable, so JSON may hold null.
function matches (svc: ServiceSpec, m: Member): boolean {
  const p = svc.placement
  const c = m.characteristics
  return secretsOf(svc).every((name) => c.secrets?.includes(name) === true) &&
    (svc.run.image === undefined || c.runtimes?.includes('docker') === true) &&
    labelsMatch(p.labels, c.labels) &&
    (p.minCpus == null || c.cpus >= p.minCpus) &&
    (p.minMemoryMb == null || c.memoryMb >= p.minMemoryMb) &&
    (p.arch == null || c.arch === p.arch)
}

function labelsMatch (want: Record<string, string> | undefined, have: Record<string, string>): boolean {
  if (want == null) return true
  return Object.keys(want).every((k) => Object.hasOwn(have, k) && have[k] === want[k])
}

/** Why no candidate matches: each selector no candidate meets on its own, or else their combination. */
function noMatchReason (svc: ServiceSpec, candidates: Member[], noun: string): string {
  const p = svc.placement
  if (candidates.length === 0) return `no ${noun}s`
  const chars = candidates.map((m) => m.characteristics)
  const labels = Object.keys(p.labels ?? {}).sort(compareIds).map((k) => `${k}=${(p.labels ?? {})[k]}`)
  const terms: string[] = []
  const reasons: string[] = []
  if (labels.length > 0) {
    terms.push(`labels ${labels.join(', ')}`)
    if (!candidates.some((m) => labelsMatch(p.labels, m.characteristics.labels))) reasons.push(`no ${noun} matches labels ${labels.join(', ')}`)
  }
  if (p.minCpus != null) {
    terms.push(`${p.minCpus} cpus`)
    const most = Math.max(...chars.map((c) => c.cpus))
    if (most < p.minCpus) reasons.push(`needs ${p.minCpus} cpus, the most any ${noun} has is ${most}`)
  }
  if (p.minMemoryMb != null) {
    terms.push(`${p.minMemoryMb} MB`)
    const most = Math.max(...chars.map((c) => c.memoryMb))
    if (most < p.minMemoryMb) reasons.push(`needs a node with ${p.minMemoryMb} MB, the most any ${noun} has is ${most} MB`)
  }
  if (p.arch != null) {
    terms.push(`arch ${p.arch}`)
    if (!chars.some((c) => c.arch === p.arch)) reasons.push(`arch ${p.arch}: no ${noun} has it`)
  }
  for (const secret of secretsOf(svc)) {
    terms.push(`secret ${secret}`)
    if (!chars.some((c) => c.secrets?.includes(secret) === true)) reasons.push(`needs the secret "${secret}", which no ${noun}'s image carries (in its secrets/ folder)`)
  }
  if (svc.run.image !== undefined) {
    terms.push('a Docker engine')
    if (!chars.some((c) => c.runtimes?.includes('docker') === true)) reasons.push(`runs containers (run.image), and no ${noun} has a Docker engine (its socket answering when the node started)`)
  }
  return reasons.length > 0 ? reasons.join('; ') : `no ${noun} matches all of: ${terms.join(', ')}`
}

/** `needs 4096 MB, largest free is 2048 MB on node-b` (ties: the smallest id). */
function memoryReason (need: number, open: Member[], free: Map<string, number>): string {
  let best = open[0]
  for (const m of open) {
    const d = (free.get(m.id) ?? 0) - (free.get(best.id) ?? 0)
    if (d > 0 || (d === 0 && compareIds(m.id, best.id) < 0)) best = m
  }
  return `needs ${need} MB, largest free is ${free.get(best.id) ?? 0} MB on ${best.id}`
}
