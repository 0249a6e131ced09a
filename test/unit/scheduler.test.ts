import test from 'ava'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import type { Member, MemberStatus, MemberTable } from '../../node/membership/types'
import { defaultHubPolicy } from '../../node/hubs/types'
import type { BelowMinNodes, PlacementSpec, ResourcesSpec, ServiceSpec, Spec } from '../../node/desired/types'
import {
  assignmentsFor, computePhase, diffAssignments, schedule,
  type Assignment, type PhaseKind, type Schedule
} from '../../node/scheduler'

// ---- fixtures ---------------------------------------------------------------------------

interface MemberInit { memoryMb?: number, cpus?: number, arch?: string, labels?: Record<string, string>, status?: MemberStatus }

function member (id: string, o: MemberInit = {}): Member {
  return {
    id,
    address: `${id}:7000`,
    incarnation: 1,
    heartbeat: 1,
    status: o.status ?? 'alive',
    characteristics: { cpus: o.cpus ?? 4, memoryMb: o.memoryMb ?? 8192, arch: o.arch ?? 'x64', labels: o.labels ?? {}, startedAt: 0 },
    hub: false
  }
}

function tableOf (...members: Member[]): MemberTable {
  return Object.fromEntries(members.map((m) => [m.id, m]))
}

function service (placement: PlacementSpec, resources?: ResourcesSpec): ServiceSpec {
  return { run: { command: 'node' }, placement, ...(resources === undefined ? {} : { resources }) }
}

function specOf (services: Record<string, ServiceSpec>, minNodes = 1, belowMinNodes: BelowMinNodes = 'pause'): Spec {
  const cluster = { name: 'test', minNodes, belowMinNodes, hubs: defaultHubPolicy, revokedSerials: [], maxCommitMb: 64 }
  return { cluster, services, ops: {}, plugins: [] }
}

/** Instance -> node. */
function where (s: Schedule): Record<string, string> {
  return Object.fromEntries(s.assignments.map((a) => [a.instance, a.node]))
}

function reasons (s: Schedule): string[] {
  return s.unschedulable.map((u) => `${u.instance ?? u.service}: ${u.reason}`)
}

const abc = tableOf(member('node-a'), member('node-b'), member('node-c'))

// ---- phase ------------------------------------------------------------------------------

test('scheduler: forming while fewer alive members than minNodes, nothing is assigned', (t) => {
  const spec = specOf({ agent: service({ kind: 'every' }), web: service({ kind: 'replicas', count: 2 }) }, 3)
  const s = schedule({ spec, table: tableOf(member('node-a'), member('node-b')), hubs: ['node-a'] })
  t.deepEqual(s.phase, { kind: 'forming', alive: 2, minNodes: 3, reason: 'forming: 2 of 3 nodes' })
  t.deepEqual(s.assignments, [])
  t.deepEqual(s.unschedulable, [])
})

test('scheduler: the phase goes forming, running, degraded, running with each below-min policy', (t) => {
  const words: Record<BelowMinNodes, string> = { pause: 'services paused', stop: 'services stopped', keep: 'services kept running' }
  for (const policy of ['pause', 'stop', 'keep'] as const) {
    const cluster = specOf({}, 3, policy).cluster
    let prev: PhaseKind | undefined
    const seen: string[] = []
    for (const alive of [1, 2, 3, 4, 2, 1, 3]) {
      const p = computePhase(alive, cluster, prev)
      seen.push(p.reason)
      prev = p.kind
    }
    t.deepEqual(seen, [
      'forming: 1 of 3 nodes', 'forming: 2 of 3 nodes', 'running: 3 nodes (minNodes 3)', 'running: 4 nodes (minNodes 3)',
      `degraded: 2 of 3 nodes, ${words[policy]}`, `degraded: 1 of 3 nodes, ${words[policy]}`, 'running: 3 nodes (minNodes 3)'
    ], policy)
    t.deepEqual(computePhase(1, cluster, 'running'), { kind: 'degraded', alive: 1, minNodes: 3, policy, reason: `degraded: 1 of 3 nodes, ${words[policy]}` })
  }
  t.is(computePhase(1, specOf({}).cluster, undefined).reason, 'running: 1 node (minNodes 1)')
})

test('scheduler: a node that starts below minNodes says forming, even if the cluster once ran', (t) => {
  t.is(computePhase(1, specOf({}, 2).cluster, undefined).kind, 'forming')
})

test('scheduler: degraded with stop assigns nothing, with pause or keep assigns as if running', (t) => {
  const services = { agent: service({ kind: 'every' }), web: service({ kind: 'replicas', count: 2 }) }
  const table = tableOf(member('node-a'), member('node-b'))
  const running = schedule({ spec: specOf(services, 2), table, hubs: [], previousPhase: 'running' })
  t.is(running.phase.kind, 'running')
  const fewer = tableOf(member('node-a'), member('node-b', { status: 'dead' }))
  for (const policy of ['pause', 'keep'] as const) {
    const s = schedule({ spec: specOf(services, 3, policy), table, hubs: [], previousPhase: 'running' })
    t.is(s.phase.kind, 'degraded')
    t.deepEqual(s.assignments, running.assignments)
    const one = schedule({ spec: specOf(services, 2, policy), table: fewer, hubs: [], previousPhase: 'running' })
    t.is(one.phase.reason, `degraded: 1 of 2 nodes, services ${policy === 'pause' ? 'paused' : 'kept running'}`)
    t.is(where(one)['agent@node-a'], 'node-a')
    t.is(one.assignments.length, 2)
  }
  const stopped = schedule({ spec: specOf(services, 2, 'stop'), table: fewer, hubs: [], previousPhase: 'degraded' })
  t.is(stopped.phase.reason, 'degraded: 1 of 2 nodes, services stopped')
  t.deepEqual(stopped.assignments, [])
  t.deepEqual(stopped.unschedulable, [])
})

// ---- placement kinds --------------------------------------------------------------------

test('scheduler: an every service runs one instance on each alive or suspect member, never on dead or left ones', (t) => {
  const table = tableOf(member('node-a'), member('node-b', { status: 'suspect' }), member('node-c', { status: 'dead' }), member('node-d', { status: 'left' }))
  const s = schedule({ spec: specOf({ agent: service({ kind: 'every' }) }), table, hubs: [] })
  t.deepEqual(s.assignments, [
    { service: 'agent', instance: 'agent@node-a', node: 'node-a' },
    { service: 'agent', instance: 'agent@node-b', node: 'node-b' }
  ])
  t.is(s.phase.alive, 2)
})

test('scheduler: a hubs service runs on each hub, ignoring hub ids that are dead or unknown', (t) => {
  const table = tableOf(member('node-a'), member('node-b'), member('node-c'), member('node-d', { status: 'dead' }))
  const s = schedule({ spec: specOf({ registry: service({ kind: 'hubs' }) }), table, hubs: ['node-c', 'node-a', 'node-d', 'node-x', 'node-a'] })
  t.deepEqual(where(s), { 'registry@node-a': 'node-a', 'registry@node-c': 'node-c' })
})

test('scheduler: a singleton has exactly one instance, named after the service', (t) => {
  const s = schedule({ spec: specOf({ coordinator: service({ kind: 'singleton' }) }), table: abc, hubs: [] })
  t.is(s.assignments.length, 1)
  t.is(s.assignments[0].instance, 'coordinator-0')
})

test('scheduler: replicas spread over the nodes, one per node by default', (t) => {
  const s = schedule({ spec: specOf({ web: service({ kind: 'replicas', count: 3 }) }), table: abc, hubs: [] })
  t.deepEqual(s.assignments.map((a) => a.instance), ['web-0', 'web-1', 'web-2'])
  t.deepEqual(s.assignments.map((a) => a.node).sort(), ['node-a', 'node-b', 'node-c'])
})

test('scheduler: replicas allowed to share a node still spread evenly before doubling up', (t) => {
  const spec = specOf({ web: service({ kind: 'replicas', count: 6 }, { maxInstancesPerNode: 4 }) })
  const s = schedule({ spec, table: abc, hubs: [] })
  const perNode = new Map<string, number>()
  for (const a of s.assignments) perNode.set(a.node, (perNode.get(a.node) ?? 0) + 1)
  t.deepEqual([...perNode.values()], [2, 2, 2])
})

test('scheduler: assignments are sorted by service then instance index, web-2 before web-10', (t) => {
  const table = tableOf(...Array.from({ length: 12 }, (_, i) => member(`n${i}`)))
  const s = schedule({ spec: specOf({ web: service({ kind: 'replicas', count: 12 }), api: service({ kind: 'singleton' }) }), table, hubs: [] })
  t.deepEqual(s.assignments.map((a) => a.instance), ['api-0', ...Array.from({ length: 12 }, (_, i) => `web-${i}`)])
})

// ---- selectors --------------------------------------------------------------------------

test('scheduler: selectors pick members by labels, cpus, memory and arch', (t) => {
  const table = tableOf(
    member('node-a', { labels: { zone: 'a' }, cpus: 2, memoryMb: 2048, arch: 'x64' }),
    member('node-b', { labels: { zone: 'b', disk: 'ssd' }, cpus: 8, memoryMb: 4096, arch: 'arm64' }),
    member('node-c', { labels: { zone: 'b' }, cpus: 4, memoryMb: 16384, arch: 'x64' })
  )
  const nodesOf = (placement: PlacementSpec): string[] =>
    schedule({ spec: specOf({ s: service(placement) }), table, hubs: [] }).assignments.map((a) => a.node)
  t.deepEqual(nodesOf({ kind: 'every', labels: { zone: 'b' } }), ['node-b', 'node-c'])
  t.deepEqual(nodesOf({ kind: 'every', labels: { zone: 'b', disk: 'ssd' } }), ['node-b'])
  t.deepEqual(nodesOf({ kind: 'every', minCpus: 4 }), ['node-b', 'node-c'])
  t.deepEqual(nodesOf({ kind: 'every', minMemoryMb: 8192 }), ['node-c'])
  t.deepEqual(nodesOf({ kind: 'every', arch: 'arm64' }), ['node-b'])
  t.deepEqual(nodesOf({ kind: 'singleton', arch: 'x64', minCpus: 4 }), ['node-c'])
  t.deepEqual(nodesOf({ kind: 'replicas', count: 2, labels: { zone: 'b' } }).sort(), ['node-b', 'node-c'])
})

// ---- unschedulable ----------------------------------------------------------------------

test('scheduler: an instance with no room is reported with the largest free memory and its node', (t) => {
  const table = tableOf(member('node-a', { memoryMb: 1024 }), member('node-b', { memoryMb: 2048 }))
  const s = schedule({ spec: specOf({ db: service({ kind: 'singleton' }, { memoryMb: 4096 }) }), table, hubs: [] })
  t.deepEqual(s.assignments, [])
  t.deepEqual(s.unschedulable, [{ service: 'db', instance: 'db-0', reason: 'needs 4096 MB, largest free is 2048 MB on node-b' }])
})

test('scheduler: memory is reserved in a fixed order, node-bound services first', (t) => {
  const table = tableOf(member('node-a', { memoryMb: 1000 }))
  const spec = specOf({ a: service({ kind: 'singleton' }, { memoryMb: 600 }), z: service({ kind: 'every' }, { memoryMb: 600 }) })
  const s = schedule({ spec, table, hubs: [] })
  t.deepEqual(where(s), { 'z@node-a': 'node-a' })
  t.deepEqual(reasons(s), ['a-0: needs 600 MB, largest free is 400 MB on node-a'])
})

test('scheduler: an every instance on a node without room is reported, the others still run', (t) => {
  const table = tableOf(member('node-a', { memoryMb: 256 }), member('node-b', { memoryMb: 1024 }))
  const s = schedule({ spec: specOf({ agent: service({ kind: 'every' }, { memoryMb: 512 }) }), table, hubs: [] })
  t.deepEqual(where(s), { 'agent@node-b': 'node-b' })
  t.deepEqual(reasons(s), ['agent@node-a: needs 512 MB, node-a has 256 MB free'])
})

test('scheduler: a selector no member meets is named in words', (t) => {
  const table = tableOf(member('node-a', { labels: { zone: 'a' }, cpus: 2, memoryMb: 2048 }), member('node-b', { cpus: 1, arch: 'x64' }))
  const why = (placement: PlacementSpec): string[] => reasons(schedule({ spec: specOf({ s: service(placement) }), table, hubs: ['node-a'] }))
  t.deepEqual(why({ kind: 'every', labels: { zone: 'b' } }), ['s: no alive node matches labels zone=b'])
  t.deepEqual(why({ kind: 'singleton', minCpus: 4 }), ['s-0: needs 4 cpus, the most any alive node has is 2'])
  t.deepEqual(why({ kind: 'singleton', minMemoryMb: 16384 }), ['s-0: needs a node with 16384 MB, the most any alive node has is 8192 MB'])
  t.deepEqual(why({ kind: 'replicas', count: 2, arch: 'arm64' }), ['s-0: arch arm64: no alive node has it', 's-1: arch arm64: no alive node has it'])
  t.deepEqual(why({ kind: 'hubs', minCpus: 3 }), ['s: needs 3 cpus, the most any hub has is 2'])
  t.deepEqual(why({ kind: 'singleton', labels: { zone: 'a' }, minCpus: 2, minMemoryMb: 4096 }),
    ['s-0: no alive node matches all of: labels zone=a, 2 cpus, 4096 MB'])
})

test('scheduler: replicas beyond maxInstancesPerNode are reported, not silently dropped', (t) => {
  const table = tableOf(member('node-a'), member('node-b'))
  const capped = schedule({ spec: specOf({ web: service({ kind: 'replicas', count: 5 }, { maxInstancesPerNode: 2 }) }), table, hubs: [] })
  t.is(capped.assignments.length, 4)
  t.deepEqual(reasons(capped), ['web-4: every eligible node already runs 2 instances (maxInstancesPerNode 2)'])
  const byDefault = schedule({ spec: specOf({ web: service({ kind: 'replicas', count: 3 }) }), table, hubs: [] })
  t.deepEqual(reasons(byDefault), ['web-2: every eligible node already runs 1 instance (maxInstancesPerNode 1, the default)'])
})

// ---- membership changes -----------------------------------------------------------------

test('scheduler: suspect members keep their instances, dead ones lose them', (t) => {
  const table = tableOf(...['a', 'b', 'c', 'd', 'e'].map((id) => member(`node-${id}`)))
  const spec = specOf({ agent: service({ kind: 'every' }), coordinator: service({ kind: 'singleton' }), web: service({ kind: 'replicas', count: 3 }) })
  const before = schedule({ spec, table, hubs: [] })
  const host = where(before)['coordinator-0']
  const suspect = schedule({ spec, table: { ...table, [host]: { ...table[host], status: 'suspect' } }, hubs: [] })
  t.deepEqual(suspect, before)
  const dead = schedule({ spec, table: { ...table, [host]: { ...table[host], status: 'dead' } }, hubs: [] })
  t.deepEqual(assignmentsFor(dead, host), [])
  t.not(where(dead)['coordinator-0'], host)
  t.true(diffAssignments(before.assignments, dead.assignments).moved.some((m) => m.instance === 'coordinator-0' && m.from === host))
})

test('scheduler: assignmentsFor lists one node\'s instances, diffAssignments tells moved, added and removed apart', (t) => {
  const a = (instance: string, node: string): Assignment => ({ service: 'web', instance, node })
  const s = schedule({ spec: specOf({ web: service({ kind: 'replicas', count: 3 }) }), table: abc, hubs: [] })
  t.deepEqual(['node-a', 'node-b', 'node-c'].flatMap((n) => assignmentsFor(s, n)).length, 3)
  t.true(assignmentsFor(s, 'node-a').every((x) => x.node === 'node-a'))
  t.deepEqual(diffAssignments([a('web-0', 'x'), a('web-1', 'y'), a('web-2', 'z')], [a('web-3', 'x'), a('web-1', 'x'), a('web-0', 'x')]), {
    moved: [{ service: 'web', instance: 'web-1', from: 'y', to: 'x' }],
    added: [a('web-3', 'x')],
    removed: [a('web-2', 'z')]
  })
})

// ---- properties -------------------------------------------------------------------------

const ids = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e', 'node-f', 'n1', 'n10', 'n2', 'Z', 'zz', 'm-9', '__proto__', 'constructor']
const statusArb = fc.constantFrom<MemberStatus>('alive', 'alive', 'alive', 'suspect', 'dead', 'left')

const memberArb = (id: string): fc.Arbitrary<Member> => fc.record({
  memoryMb: fc.constantFrom(0, 256, 512, 1024, 2048, 4096),
  cpus: fc.integer({ min: 1, max: 8 }),
  arch: fc.constantFrom('x64', 'arm64'),
  zone: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
  status: statusArb
}).map((o) => member(id, { ...o, labels: o.zone === undefined ? {} : { zone: o.zone } }))

const membersArb: fc.Arbitrary<Member[]> = fc.shuffledSubarray(ids, { minLength: 1, maxLength: 12 })
  .chain((chosen) => fc.tuple(...chosen.map(memberArb)))

/** A table built by setting keys one by one (Object.fromEntries would drop an own `__proto__`). */
function tableFrom (members: Member[]): MemberTable {
  const t: MemberTable = {}
  for (const m of members) Object.defineProperty(t, m.id, { value: m, enumerable: true, writable: true, configurable: true })
  return t
}

interface ArbOpts { memory: boolean }

const placementArb: fc.Arbitrary<PlacementSpec> = fc.record({
  kind: fc.constantFrom<PlacementSpec['kind']>('every', 'hubs', 'singleton', 'replicas'),
  count: fc.integer({ min: 1, max: 8 }),
  labels: fc.option(fc.constant({ zone: 'a' }), { nil: undefined }),
  minCpus: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
  minMemoryMb: fc.option(fc.constantFrom(512, 2048), { nil: undefined }),
  arch: fc.option(fc.constantFrom('x64', 'arm64'), { nil: undefined })
}, { requiredKeys: ['kind'] }).map((p) => {
  const { count, ...rest } = p
  return p.kind === 'replicas' ? { ...rest, count: count ?? 2 } : rest
})

const servicesArb = ({ memory }: ArbOpts): fc.Arbitrary<Record<string, ServiceSpec>> => fc.dictionary(
  fc.constantFrom('agent', 'api', 'db', 'web', 'web-1', 'cache'),
  fc.record({
    placement: placementArb,
    memoryMb: memory ? fc.option(fc.constantFrom(128, 512, 1024, 3000), { nil: undefined }) : fc.constant(undefined),
    max: memory ? fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }) : fc.constant(undefined)
  }).map((o) => {
    const resources: ResourcesSpec = {}
    if (o.memoryMb !== undefined) resources.memoryMb = o.memoryMb
    if (o.max !== undefined) resources.maxInstancesPerNode = o.max
    return service(o.placement, resources)
  }),
  { minKeys: 1, maxKeys: 4 }
)

interface Case { members: Member[], services: Record<string, ServiceSpec>, hubs: string[], minNodes: number, policy: BelowMinNodes, previous: PhaseKind | undefined }

const caseArb = (o: ArbOpts): fc.Arbitrary<Case> => membersArb.chain((members) => fc.record({
  members: fc.constant(members),
  services: servicesArb(o),
  hubs: fc.subarray([...members.map((m) => m.id), 'ghost'], { maxLength: Math.min(4, members.length + 1) }),
  minNodes: fc.integer({ min: 1, max: 4 }),
  policy: fc.constantFrom<BelowMinNodes>('pause', 'stop', 'keep'),
  previous: fc.constantFrom<PhaseKind | undefined>(undefined, 'forming', 'running', 'degraded')
}))

function run (c: Case, members = c.members, hubs = c.hubs): Schedule {
  return schedule({ spec: specOf(c.services, c.minNodes, c.policy), table: tableFrom(members), hubs, previousPhase: c.previous })
}

/** A cluster that places whatever the members: minNodes 1, it ran before, and below minNodes (no member up) it keeps running. */
function running (c: Case): Case {
  return { ...c, minNodes: 1, previous: 'running', policy: 'keep' }
}

const up = (m: Member): boolean => m.status === 'alive' || m.status === 'suspect'

function matchesSelector (p: PlacementSpec, m: Member): boolean {
  const c = m.characteristics
  return Object.entries(p.labels ?? {}).every(([k, v]) => c.labels[k] === v) &&
    c.cpus >= (p.minCpus ?? 0) && c.memoryMb >= (p.minMemoryMb ?? 0) && (p.arch === undefined || c.arch === p.arch)
}

test('scheduler: the same input gives the same output, whatever the order of the table\'s keys', (t) => {
  const arb = caseArb({ memory: true }).chain((c) =>
    fc.tuple(fc.constant(c), fc.shuffledSubarray(c.members, { minLength: c.members.length })))
  fc.assert(fc.property(arb, ([c, shuffled]) => {
    const s = run(c)
    assert.deepStrictEqual(run(structuredClone(c)), s)
    assert.deepStrictEqual(run(c, shuffled), s)
  }))
  t.pass()
})

test('scheduler: every assignment is to an alive or suspect member that matches the selector', (t) => {
  fc.assert(fc.property(caseArb({ memory: true }), (c) => {
    const s = run(c)
    const byId = new Map(c.members.map((m) => [m.id, m]))
    for (const a of s.assignments) {
      const m = byId.get(a.node)
      assert.ok(m !== undefined && up(m), `${a.instance} on ${a.node}`)
      const p = c.services[a.service].placement
      assert.ok(matchesSelector(p, m), `${a.instance} on ${a.node}`)
      if (p.kind === 'hubs') assert.ok(c.hubs.includes(a.node))
      if (p.kind === 'every' || p.kind === 'hubs') assert.equal(a.instance, `${a.service}@${a.node}`)
    }
    const keys = s.assignments.map((a) => `${a.service}/${a.instance}`)
    assert.equal(new Set(keys).size, keys.length)
  }))
  t.pass()
})

test('scheduler: no node\'s reserved memory exceeds its budget', (t) => {
  fc.assert(fc.property(caseArb({ memory: true }), (c) => {
    const used = new Map<string, number>()
    for (const a of run(c).assignments) used.set(a.node, (used.get(a.node) ?? 0) + (c.services[a.service].resources?.memoryMb ?? 0))
    for (const m of c.members) assert.ok((used.get(m.id) ?? 0) <= m.characteristics.memoryMb, m.id)
  }))
  t.pass()
})

test('scheduler: a singleton has at most one assignment, and is reported when it has none', (t) => {
  fc.assert(fc.property(caseArb({ memory: true }).map(running), (c) => {
    const s = run(c)
    for (const [name, svc] of Object.entries(c.services)) {
      if (svc.placement.kind !== 'singleton') continue
      const placed = s.assignments.filter((a) => a.service === name).length
      const missing = s.unschedulable.filter((u) => u.service === name).length
      assert.ok(placed <= 1)
      assert.equal(placed + missing, 1)
    }
  }))
  t.pass()
})

test('scheduler: replicas get min(count, capacity) assignments and every missing one is reported', (t) => {
  fc.assert(fc.property(caseArb({ memory: true }).map(running), (c) => {
    const s = run(c)
    for (const [name, svc] of Object.entries(c.services)) {
      if (svc.placement.kind !== 'replicas') continue
      const count = svc.placement.count ?? 0
      const placed = s.assignments.filter((a) => a.service === name).map((a) => a.instance)
      const missing = s.unschedulable.filter((u) => u.service === name).map((u) => u.instance)
      assert.deepStrictEqual([...placed, ...missing].sort(), Array.from({ length: count }, (_, i) => `${name}-${i}`).sort())
      if ((svc.resources?.memoryMb ?? 0) === 0) {
        const capacity = c.members.filter((m) => up(m) && matchesSelector(svc.placement, m)).length * (svc.resources?.maxInstancesPerNode ?? 1)
        assert.equal(placed.length, Math.min(count, capacity))
      }
    }
  }))
  t.pass()
})

/** Index of a replica or singleton instance (`web-1-3` -> 3). */
const indexOf = (instance: string): number => Number(/-(\d+)$/.exec(instance)?.[1])

test('scheduler: removing a member or marking it dead moves only instances that were on it (no memory pressure)', (t) => {
  const arb = caseArb({ memory: false }).map(running).chain((c) =>
    fc.tuple(fc.constant(c), fc.constantFrom(...c.members.map((m) => m.id)), fc.boolean()))
  fc.assert(fc.property(arb, ([c, gone, remove]) => {
    const before = run(c)
    const members = remove ? c.members.filter((m) => m.id !== gone) : c.members.map((m) => m.id === gone ? { ...m, status: 'dead' as const } : m)
    const after = where(run(c, members, c.hubs.filter((h) => h !== gone)))
    for (const [name, svc] of Object.entries(c.services)) {
      const mine = before.assignments.filter((a) => a.service === name)
      // Replicas spread, so a displaced replica may take the node of a later one (see place.ts):
      // those below the lowest index that was on the member stay; singletons and node-bound ones all stay.
      const firstHit = Math.min(...mine.filter((a) => a.node === gone).map((a) => indexOf(a.instance)))
      for (const a of mine) {
        if (a.node === gone) continue
        if (svc.placement.kind === 'replicas' && indexOf(a.instance) > firstHit) continue
        assert.equal(after[a.instance], a.node, `${a.instance} moved off ${a.node}`)
      }
    }
  }))
  t.pass()
})

test('scheduler: adding a member moves a replica or singleton only onto the new member (no memory pressure)', (t) => {
  const arb = caseArb({ memory: false }).map(running).filter((c) => c.members.length >= 2).chain((c) =>
    fc.tuple(fc.constant(c), fc.constantFrom(...c.members.map((m) => m.id))))
  fc.assert(fc.property(arb, ([c, joining]) => {
    const without = c.members.filter((m) => m.id !== joining)
    const before = run(c, without, c.hubs.filter((h) => h !== joining))
    const after = where(run(c))
    const joined = c.members.find((m) => m.id === joining) as Member
    for (const [name, svc] of Object.entries(c.services)) {
      const moved = before.assignments.filter((a) => a.service === name && after[a.instance] !== a.node)
      if (svc.placement.kind === 'every' || svc.placement.kind === 'hubs') {
        assert.deepStrictEqual(moved, [])
        continue
      }
      // The first replica that changes goes to the new member; a later one may follow it (see place.ts).
      const first = moved.sort((a, b) => indexOf(a.instance) - indexOf(b.instance))[0]
      if (first !== undefined) assert.equal(after[first.instance], joining, `${first.instance} went to ${after[first.instance]}`)
      if (svc.placement.kind === 'singleton') assert.ok(moved.length === 0 || up(joined))
    }
  }))
  t.pass()
})

test('scheduler: a singleton moves only off a member that left, or onto one that joined', (t) => {
  const arb = caseArb({ memory: false }).map(running).chain((c) =>
    fc.tuple(fc.constant(c), fc.constantFrom(...c.members.map((m) => m.id))))
  fc.assert(fc.property(arb, ([c, id]) => {
    const whole = run(c)
    const less = run(c, c.members.filter((m) => m.id !== id), c.hubs.filter((h) => h !== id))
    const single = (s: Schedule): Assignment[] => s.assignments.filter((a) => c.services[a.service].placement.kind === 'singleton')
    const d = diffAssignments(single(whole), single(less))
    assert.deepStrictEqual(d.added, [])
    assert.ok(d.moved.every((m) => m.from === id), 'a removal moves only what was on the member')
    assert.ok(d.removed.every((a) => a.node === id))
    const back = diffAssignments(single(less), single(whole))
    assert.ok(back.moved.every((m) => m.to === id), 'a join moves only onto the member')
  }))
  t.pass()
})

test('scheduler: marking a member suspect changes nothing', (t) => {
  const arb = caseArb({ memory: true }).filter((c) => c.members.some((m) => m.status === 'alive')).chain((c) =>
    fc.tuple(fc.constant(c), fc.constantFrom(...c.members.filter((m) => m.status === 'alive').map((m) => m.id))))
  fc.assert(fc.property(arb, ([c, id]) => {
    const members = c.members.map((m) => m.id === id ? { ...m, status: 'suspect' as const } : m)
    assert.deepStrictEqual(run(c, members), run(c))
  }))
  t.pass()
})

/** The members as they would be once each runs what `s` assigned it (the supervisor gossips that). */
function withInstances (members: Member[], s: Schedule): Member[] {
  return members.map((m) => ({
    ...m,
    instances: Object.fromEntries(s.assignments.filter((a) => a.node === m.id).map((a) => [a.instance, { version: 'v1', state: 'ready' }]))
  }))
}

test('scheduler: once instances run, a member leaving moves only its own instances (stickiness)', (t) => {
  const arb = caseArb({ memory: false }).map(running).chain((c) =>
    fc.tuple(fc.constant(c), fc.constantFrom(...c.members.map((m) => m.id))))
  fc.assert(fc.property(arb, ([c, gone]) => {
    const before = run(c)
    const settled = withInstances(c.members, before)
    assert.deepStrictEqual(where(run(c, settled)), where(before), 'a settled cluster stays as it is')
    const after = where(run(c, settled.filter((m) => m.id !== gone), c.hubs.filter((h) => h !== gone)))
    for (const a of before.assignments) {
      if (a.node !== gone) assert.equal(after[a.instance], a.node, `${a.instance} moved off ${a.node}`)
    }
  }))
  t.pass()
})

test('scheduler: once instances run, a member joining moves no replica or singleton', (t) => {
  const arb = caseArb({ memory: false }).map(running).filter((c) => c.members.length >= 2).chain((c) =>
    fc.tuple(fc.constant(c), fc.constantFrom(...c.members.map((m) => m.id))))
  fc.assert(fc.property(arb, ([c, joining]) => {
    const without = c.members.filter((m) => m.id !== joining)
    const hubs = c.hubs.filter((h) => h !== joining)
    const before = run(c, without, hubs)
    const settled = withInstances(without, before)
    const joined = c.members.find((m) => m.id === joining) as Member
    const after = where(run(c, [...settled, joined], hubs))
    for (const a of before.assignments) {
      const kind = c.services[a.service].placement.kind
      if (kind === 'singleton' || kind === 'replicas') assert.equal(after[a.instance], a.node, `${a.instance} moved to ${after[a.instance]}`)
    }
  }))
  t.pass()
})

test('scheduler: a service that takes a secret is placed only on nodes whose image carries it, or is unschedulable in words', (t) => {
  const withSecret = (id: string, secrets: string[]): Member => ({ ...member(id), characteristics: { ...member(id).characteristics, secrets } })
  const table = tableOf(withSecret('a', []), withSecret('b', ['db', 'other']), withSecret('c', ['other']))
  const svc: ServiceSpec = { run: { command: 'x', env: { PASSWORD: { secret: 'db' }, PLAIN: 'p' } }, placement: { kind: 'every' } }
  const s = schedule({ spec: specOf({ app: svc, lost: { ...svc, run: { command: 'x', env: { X: { secret: 'nowhere' } } }, placement: { kind: 'singleton' } } }), table, hubs: [] })
  t.deepEqual(s.assignments.filter((x) => x.service === 'app').map((x) => x.node), ['b'])
  t.deepEqual(s.unschedulable, [{ service: 'lost', instance: 'lost-0', reason: 'needs the secret "nowhere", which no alive node\'s image carries (in its secrets/ folder)' }])
})

test('scheduler: when two nodes claim an instance, the newer run (higher state generation) keeps it, not the better score', (t) => {
  const claiming = (id: string, g: number): Member => ({ ...member(id), instances: { 'one-0': { version: 'x', state: 'ready', generation: g } } })
  for (const [older, newer] of [['a', 'b'], ['b', 'a']]) {
    const s = schedule({ spec: specOf({ one: service({ kind: 'singleton' }) }), table: tableOf(claiming(older, 1), claiming(newer, 2), member('c')), hubs: [] })
    t.is(s.assignments[0].node, newer, `generation 2 on ${newer} beats generation 1 on ${older}`)
  }
})

// ---- unhealthy members (node/health) -----------------------------------------------------

function unhealthy (m: Member, reason = 'data dir has 80 MiB free (floor 256 MiB)'): Member {
  return { ...m, characteristics: { ...m.characteristics, unhealthy: reason } }
}

function running1 (m: Member, ...instances: string[]): Member {
  return { ...m, instances: Object.fromEntries(instances.map((i) => [i, { version: 'v1', state: 'ready' }])) }
}

test('scheduler: an unhealthy member gives its singleton up to a healthy one and is given no new one', (t) => {
  const spec = specOf({ one: service({ kind: 'singleton' }), two: service({ kind: 'singleton' }), three: service({ kind: 'singleton' }) })
  const s = schedule({ spec, table: tableOf(member('a'), unhealthy(running1(member('b'), 'one-0')), member('c')), hubs: [] })
  t.deepEqual(Object.keys(where(s)).sort(), ['one-0', 'three-0', 'two-0'])
  t.false(s.assignments.some((a) => a.node === 'b'), JSON.stringify(s.assignments))
  t.deepEqual(s.unschedulable, [])
})

test('scheduler: a replica moves off an unhealthy member when a healthy one has room, and stays where it is when none has', (t) => {
  const spec = specOf({ web: service({ kind: 'replicas', count: 3 }) })
  const settled = [running1(member('a'), 'web-0'), unhealthy(running1(member('b'), 'web-1')), running1(member('c'), 'web-2')]
  t.deepEqual(where(schedule({ spec, table: tableOf(...settled), hubs: [] })), { 'web-0': 'a', 'web-1': 'b', 'web-2': 'c' }, 'nowhere else to go (one per node)')
  t.deepEqual(where(schedule({ spec, table: tableOf(...settled, member('d')), hubs: [] })), { 'web-0': 'a', 'web-1': 'd', 'web-2': 'c' }, 'a healthy node with room takes it')
  const doubling = specOf({ web: service({ kind: 'replicas', count: 3 }, { maxInstancesPerNode: 2 }) })
  const moved = where(schedule({ spec: doubling, table: tableOf(...settled), hubs: [] }))
  t.not(moved['web-1'], 'b', 'two per node allowed: a healthy node doubles up rather than keep it on the unhealthy one')
  t.is(moved['web-0'], 'a')
  t.is(moved['web-2'], 'c')
})

test('scheduler: a cluster unhealthy everywhere keeps running everything, where it runs', (t) => {
  const spec = specOf({ one: service({ kind: 'singleton' }), web: service({ kind: 'replicas', count: 2 }), agent: service({ kind: 'every' }) })
  const fresh = schedule({ spec, table: abc, hubs: [] })
  const settled = withInstances(Object.values(abc), fresh)
  const sick = schedule({ spec, table: tableOf(...settled.map((m) => unhealthy(m, 'event loop delayed 2.3 s (bound 1 s)'))), hubs: [] })
  t.deepEqual(where(sick), where(fresh))
  t.deepEqual(sick.unschedulable, [])
  const sickFresh = schedule({ spec, table: tableOf(...Object.values(abc).map((m) => unhealthy(m))), hubs: [] })
  t.is(sickFresh.assignments.length, fresh.assignments.length, 'placed on unhealthy members rather than nowhere')
})

test('scheduler: an unhealthy member keeps its node-bound instances and counts for the phase', (t) => {
  const spec = specOf({ agent: service({ kind: 'every' }), edge: service({ kind: 'hubs' }) }, 3)
  const s = schedule({ spec, table: tableOf(member('a'), unhealthy(member('b')), member('c')), hubs: ['b', 'c'] })
  t.is(s.phase.kind, 'running')
  t.deepEqual(s.assignments.filter((a) => a.node === 'b').map((a) => a.instance), ['agent@b', 'edge@b'])
})

/** A case whose members are all up (so placement has choices), and the ids of those that say they are unhealthy. */
const sickCaseArb = caseArb({ memory: false }).map(running)
  .map((c) => ({ ...c, members: c.members.map((m) => ({ ...m, status: m.status === 'suspect' ? 'suspect' as const : 'alive' as const })) }))
  .chain((c) => fc.tuple(fc.constant(c), fc.subarray(c.members.map((m) => m.id))))

const markUnhealthy = (members: Member[], sick: string[]): Member[] => members.map((m) => sick.includes(m.id) ? unhealthy(m) : m)

test('scheduler: unhealthy members host a singleton or replica only when no healthy member can, and health never changes how many run', (t) => {
  fc.assert(fc.property(sickCaseArb, ([c, sick]) => {
    const members = markUnhealthy(c.members, sick)
    const s = run(c, members)
    assert.equal(s.assignments.length, run(c).assignments.length, 'as many instances as with every member healthy')
    for (const [name, svc] of Object.entries(c.services)) {
      const p = svc.placement
      if (p.kind !== 'singleton' && p.kind !== 'replicas') continue
      const cap = svc.resources?.maxInstancesPerNode ?? 1
      const hosts = members.filter((m) => up(m) && matchesSelector(p, m))
      const healthyRoom = hosts.filter((m) => !sick.includes(m.id)).length * cap
      const placed = s.assignments.filter((a) => a.service === name)
      const onSick = placed.filter((a) => sick.includes(a.node)).length
      assert.equal(onSick, Math.max(0, placed.length - healthyRoom), `${name}: ${onSick} on unhealthy members, healthy room ${healthyRoom}`)
    }
  }), { numRuns: 300 })
  t.pass()
})

test('scheduler: once instances run, a member turning unhealthy moves only its own singletons and replicas, and its recovery moves nothing back', (t) => {
  fc.assert(fc.property(sickCaseArb, ([c, sick]) => {
    const before = run(c)
    const settled = withInstances(c.members, before)
    const during = run(c, markUnhealthy(settled, sick))
    const after = where(during)
    for (const a of before.assignments) {
      const kind = c.services[a.service].placement.kind
      if (!sick.includes(a.node) || kind === 'every' || kind === 'hubs') assert.equal(after[a.instance], a.node, `${a.instance} moved off ${a.node}`)
      else if (after[a.instance] !== a.node) assert.ok(!sick.includes(after[a.instance]), `${a.instance} moved from one unhealthy member to another`)
    }
    const recovered = withInstances(c.members, during)
    assert.deepStrictEqual(where(run(c, recovered)), after, 'recovery moves nothing back')
  }), { numRuns: 300 })
  t.pass()
})
