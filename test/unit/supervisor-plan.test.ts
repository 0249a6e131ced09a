import test from 'ava'
import fc from 'fast-check'
import type { Member, MemberStatus, MemberTable } from '../../node/membership/types'
import { defaultHubPolicy } from '../../node/hubs/types'
import type { PlacementSpec, ServiceSpec, Spec } from '../../node/desired/types'
import { schedule, type Assignment, type Phase, type Schedule } from '../../node/scheduler'
import { plan, successors, type LocalInstance, type PlanAction, type PlanInput } from '../../node/supervisor/plan'

// ---- fixtures ---------------------------------------------------------------------------

function member (id: string, status: MemberStatus = 'alive', instances: Member['instances'] = {}): Member {
  return { id, address: `${id}:7000`, incarnation: 1, heartbeat: 1, status, hub: false, instances, characteristics: { cpus: 4, memoryMb: 8192, arch: 'x64', labels: {}, startedAt: 0 } }
}
const tableOf = (...ms: Member[]): MemberTable => Object.fromEntries(ms.map((m) => [m.id, m]))
const running: Phase = { kind: 'running', alive: 1, minNodes: 1, reason: 'running: 1 node (minNodes 1)' }
const majority = { ok: true, reason: 'in touch with 1 of 1 members: a majority' }

function service (placement: PlacementSpec): ServiceSpec {
  return { run: { command: 'node' }, placement }
}

function specOf (services: Record<string, ServiceSpec>): Spec {
  return { cluster: { name: 'test', minNodes: 1, belowMinNodes: 'pause', hubs: defaultHubPolicy, revokedSerials: [], maxCommitMb: 64 }, services, ops: {}, plugins: [] }
}

/** A plan input for node `a` with everything settled, overridden by `o`. */
function input (o: Partial<PlanInput> & { assignments?: Assignment[] }): PlanInput {
  const { assignments, ...rest } = o
  return {
    self: 'a',
    schedule: { phase: running, assignments: assignments ?? [], unschedulable: [] },
    services: {},
    local: {},
    busy: new Set(),
    versions: {},
    table: tableOf(member('a')),
    inTouch: new Set(),
    quorum: majority,
    quorumSince: 0,
    fenceAfterMs: 2500,
    startFailures: {},
    now: 10_000,
    ...rest
  }
}

const kinds = (actions: PlanAction[]): string[] => actions.map((x) => `${x.kind} ${x.kind === 'start' ? x.assignment.instance : x.instance}`)

// ---- examples ---------------------------------------------------------------------------

test('plan: an instance not assigned here is stopped, with the reason', (t) => {
  const p = plan(input({ local: { 'web-0': { service: 'web', version: 'v1', state: 'ready' } } }))
  t.deepEqual(p.actions, [{ kind: 'stop', instance: 'web-0', reason: 'no longer assigned to this node', atOnce: false }])
})

test('plan: an assigned instance with its code ready starts; one already running on that version is kept', (t) => {
  const web0 = { service: 'web', instance: 'web-0', node: 'a' }
  const web1 = { service: 'web', instance: 'web-1', node: 'a' }
  const p = plan(input({ assignments: [web0, web1], services: { web: service({ kind: 'replicas', count: 2 }) }, local: { 'web-0': { service: 'web', version: 'v1', state: 'ready' } }, versions: { 'web-0': { version: 'v1' }, 'web-1': { version: 'v1' } } }))
  t.deepEqual(p.actions, [{ kind: 'keep', instance: 'web-0' }, { kind: 'start', assignment: web1, version: 'v1' }])
})

test('plan: a singleton waits while another member still reports it running, and starts once it says stopped', (t) => {
  const one = { service: 'one', instance: 'one-0', node: 'a' }
  const base = { assignments: [one], services: { one: service({ kind: 'singleton' }) }, versions: { 'one-0': { version: 'v1' } } }
  const stopping = plan(input({ ...base, table: tableOf(member('a'), member('b', 'suspect', { 'one-0': { version: 'v1', state: 'stopping' } })) }))
  t.deepEqual(stopping.actions, [{ kind: 'wait', instance: 'one-0', reason: 'singleton still stopping on b; starting once it stops', level: 'info' }])
  const stopped = plan(input({ ...base, table: tableOf(member('a'), member('b', 'alive', { 'one-0': { version: 'v1', state: 'stopped' } })) }))
  t.deepEqual(kinds(stopped.actions), ['start one-0'])
})

test('plan: a singleton starts only once the quorum has held for fenceAfterMs; without quorum a running one is stopped at once', (t) => {
  const one = { service: 'one', instance: 'one-0', node: 'a' }
  const base = { assignments: [one], services: { one: service({ kind: 'singleton' }) }, versions: { 'one-0': { version: 'v1' } } }
  const fresh = plan(input({ ...base, quorumSince: undefined, now: 5000 }))
  t.is(fresh.quorumSince, 5000, 'the quorum clock starts now')
  t.deepEqual(kinds(fresh.actions), ['wait one-0'])
  t.deepEqual(kinds(plan(input({ ...base, quorumSince: 5000, now: 7499 })).actions), ['wait one-0'])
  t.deepEqual(kinds(plan(input({ ...base, quorumSince: 5000, now: 7500 })).actions), ['start one-0'])
  const cut = { ok: false, reason: 'in touch with 1 of 3 members: not a majority, so no singleton runs on this side' }
  const fenced = plan(input({ ...base, quorum: cut, local: { 'one-0': { service: 'one', version: 'v1', state: 'ready' } } }))
  t.deepEqual(fenced.actions, [{ kind: 'stop', instance: 'one-0', reason: `fenced: ${cut.reason}`, atOnce: true }])
  t.is(fenced.quorumSince, undefined)
})

test('plan: a singleton fenced here again and again waits longer each time for the quorum to hold before it starts here again', (t) => {
  const one = { service: 'one', instance: 'one-0', node: 'a' }
  const base = { assignments: [one], services: { one: service({ kind: 'singleton' }) }, versions: { 'one-0': { version: 'v1' } }, quorumSince: 100_000 }
  const at = (fenced: number[], now: number): string[] => kinds(plan(input({ ...base, fenced: { 'one-0': fenced }, now })).actions)
  // Once: the usual hold (fenceAfterMs, 2.5 s here).
  t.deepEqual(at([99_000], 102_499), ['wait one-0'])
  t.deepEqual(at([99_000], 102_500), ['start one-0'])
  // Three times lately: 2.5 s x 4.
  t.deepEqual(at([60_000, 80_000, 99_000], 109_999), ['wait one-0'])
  t.deepEqual(at([60_000, 80_000, 99_000], 110_000), ['start one-0'])
  const waiting = plan(input({ ...base, fenced: { 'one-0': [60_000, 80_000, 99_000] }, now: 101_000 })).actions[0]
  t.like(waiting, { kind: 'wait', retryAt: 110_000 })
  t.regex(waiting.kind === 'wait' ? waiting.reason : '', /held for 10\.0 s \(fenced here 3 times in the last 10 min\)/)
  // Never more than a minute, and fences older than the window do not count.
  t.deepEqual(at(Array.from({ length: 20 }, (_, i) => 90_000 + i), 159_999), ['wait one-0'])
  t.deepEqual(at(Array.from({ length: 20 }, (_, i) => 90_000 + i), 160_000), ['start one-0'])
  t.deepEqual(at([100_000 - 10 * 60_000, 100_000 - 10 * 60_000 + 1, 99_000], 102_500), ['start one-0'])
})

test('plan property: however often a singleton was fenced, it waits for the quorum at least fenceAfterMs and at most a minute', (t) => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 2_000_000 }), { maxLength: 30 }), fc.integer({ min: 0, max: 200_000 }), (fenced, after) => {
    const now = 2_000_000
    const r = plan(input({ assignments: [{ service: 'one', instance: 'one-0', node: 'a' }], services: { one: service({ kind: 'singleton' }) }, versions: { 'one-0': { version: 'v1' } }, quorumSince: now - after, fenced: { 'one-0': fenced.sort((a, b) => a - b) }, now }))
    const started = r.actions.some((x) => x.kind === 'start')
    if (after < 2500) return !started
    if (after >= 60_000) return started
    return true
  }))
  t.pass()
})

test('plan: replacing follows the instances\' numbers, not their spelling: web-10 waits for web-9', (t) => {
  const assignments = Array.from({ length: 11 }, (_, i) => ({ service: 'web', instance: `web-${i}`, node: i === 10 ? 'a' : 'b' }))
  const onB = (ready: (i: number) => boolean): Member['instances'] => Object.fromEntries(assignments.slice(0, 10).map((_, i) => [`web-${i}`, { version: ready(i) ? 'v2' : 'v1', state: 'ready' }]))
  const base = { assignments, services: { web: service({ kind: 'replicas', count: 11 }) }, local: { 'web-10': { service: 'web', version: 'v1', state: 'ready' } }, versions: { 'web-10': { version: 'v2' } } }
  const notYet = plan(input({ ...base, table: tableOf(member('a'), member('b', 'alive', onB((i) => i !== 9))) }))
  t.deepEqual(notYet.actions, [{ kind: 'wait', instance: 'web-10', reason: 'new version v2 waits for web-9 to be ready on it', level: 'info' }])
  const go = plan(input({ ...base, table: tableOf(member('a'), member('b', 'alive', onB(() => true))) }))
  t.deepEqual(go.actions, [{ kind: 'replace', instance: 'web-10', from: 'v1', to: 'v2' }])
})

test('plan: below minNodes with pause, running instances are paused and nothing new starts; back to running they resume', (t) => {
  const degraded: Phase = { kind: 'degraded', alive: 1, minNodes: 2, policy: 'pause', reason: 'degraded: 1 of 2 nodes, services paused' }
  const web0 = { service: 'web', instance: 'web-0', node: 'a' }
  const web1 = { service: 'web', instance: 'web-1', node: 'a' }
  const base = { services: { web: service({ kind: 'replicas', count: 2 }) }, versions: { 'web-0': { version: 'v1' }, 'web-1': { version: 'v1' } } }
  const p = plan(input({ ...base, schedule: { phase: degraded, assignments: [web0, web1], unschedulable: [] }, local: { 'web-0': { service: 'web', version: 'v1', state: 'ready' } } }))
  t.deepEqual(p.actions, [
    { kind: 'keep', instance: 'web-0' },
    { kind: 'pause', instance: 'web-0', reason: degraded.reason },
    { kind: 'wait', instance: 'web-1', reason: 'phase degraded: nothing new starts', level: 'info' }
  ])
  const back = plan(input({ ...base, assignments: [web0], local: { 'web-0': { service: 'web', version: 'v1', state: 'paused' } } }))
  t.deepEqual(back.actions, [{ kind: 'keep', instance: 'web-0' }, { kind: 'resume', instance: 'web-0', reason: running.reason }])
})

test('plan: code that cannot be prepared, or a start that failed lately, waits with the reason and when to try again', (t) => {
  const web0 = { service: 'web', instance: 'web-0', node: 'a' }
  const services = { web: service({ kind: 'replicas', count: 1 }) }
  const broken = plan(input({ assignments: [web0], services, versions: { 'web-0': { error: 'git fetch failed', retryAt: 12_000 } } }))
  t.deepEqual(broken.actions, [{ kind: 'wait', instance: 'web-0', reason: 'git fetch failed', level: 'warn', retryAt: 12_000 }])
  const failed = { 'web-0': { at: 11_000, said: 'cannot start: port 80 taken; retrying in 1 s (attempt 2)' } }
  t.deepEqual(kinds(plan(input({ assignments: [web0], services, versions: { 'web-0': { version: 'v1' } }, startFailures: failed })).actions), ['wait web-0'])
  t.deepEqual(kinds(plan(input({ assignments: [web0], services, versions: { 'web-0': { version: 'v1' } }, startFailures: failed, now: 11_000 })).actions), ['start web-0'])
})

test('plan: an instance being started or stopped is left alone', (t) => {
  const web0 = { service: 'web', instance: 'web-0', node: 'a' }
  const p = plan(input({ assignments: [web0], versions: { 'web-0': { version: 'v2' } }, busy: new Set(['web-0', 'old-0']), local: { 'web-0': { service: 'web', version: 'v1', state: 'stopping' }, 'old-0': { service: 'old', version: 'v1', state: 'stopping' } } }))
  t.deepEqual(p.actions, [])
})

test('plan: a leaving node hands each instance to whoever the schedule picks without it', (t) => {
  const spec = specOf({ one: service({ kind: 'singleton' }), web: service({ kind: 'replicas', count: 2 }) })
  const table = tableOf(member('a'), member('b'), member('c'))
  const before = schedule({ spec, table, hubs: ['a', 'b', 'c'] })
  const local = before.assignments.filter((x) => x.node === 'a').map((x) => x.instance)
  const next = successors({ self: 'a', spec, table, hubs: ['a', 'b', 'c'], local, schedule })
  t.deepEqual([...next.keys()].sort(), [...local].sort())
  for (const to of next.values()) t.not(to, 'a')
})

// ---- properties -------------------------------------------------------------------------

const ids = ['a', 'b', 'c', 'd', 'e']
const statuses: MemberStatus[] = ['alive', 'suspect', 'dead', 'left']
const states = ['starting', 'ready', 'unhealthy', 'backoff', 'paused', 'stopping', 'stopped', 'failed', 'replacing']

test('plan property: a singleton never starts while another alive or suspect member still reports it running', (t) => {
  fc.assert(fc.property(
    fc.array(fc.record({ status: fc.constantFrom(...statuses), state: fc.option(fc.constantFrom(...states)) }), { minLength: 4, maxLength: 4 }),
    fc.subarray(ids.slice(1)),
    fc.boolean(),
    fc.option(fc.integer({ min: 0, max: 20_000 })),
    fc.integer({ min: 0, max: 20_000 }),
    (others, inTouch, quorumOk, since, now) => {
      const members = [member('a'), ...others.map((o, i) => member(ids[i + 1], o.status, o.state === null ? {} : { 'one-0': { version: 'v1', state: o.state } }))]
      const p = plan(input({
        assignments: [{ service: 'one', instance: 'one-0', node: 'a' }],
        services: { one: service({ kind: 'singleton' }) },
        versions: { 'one-0': { version: 'v1' } },
        table: tableOf(...members),
        inTouch: new Set(inTouch),
        quorum: { ok: quorumOk, reason: quorumOk ? 'a majority' : 'not a majority' },
        quorumSince: since ?? undefined,
        now
      }))
      if (!p.actions.some((x) => x.kind === 'start')) return true
      const heldElsewhere = members.slice(1).some((m) => {
        const s = m.instances?.['one-0']?.state
        const counts = m.status === 'alive' || m.status === 'suspect' || (m.status === 'dead' && inTouch.includes(m.id))
        return counts && s !== undefined && s !== 'stopped' && s !== 'failed'
      })
      return quorumOk && !heldElsewhere && now - (since ?? now) >= 2500
    }
  ), { numRuns: 2000 })
  t.pass()
})

test('plan property: every instance running here that is not assigned here is stopped, and nothing busy is touched', (t) => {
  fc.assert(fc.property(
    fc.uniqueArray(fc.integer({ min: 0, max: 12 }), { maxLength: 8 }),
    fc.uniqueArray(fc.integer({ min: 0, max: 12 }), { maxLength: 8 }),
    fc.uniqueArray(fc.integer({ min: 0, max: 12 }), { maxLength: 4 }),
    (assigned, runningHere, busy) => {
      const name = (i: number): string => `web-${i}`
      const local: Record<string, LocalInstance> = Object.fromEntries(runningHere.map((i) => [name(i), { service: 'web', version: 'v1', state: 'ready' }]))
      const p = plan(input({
        assignments: assigned.map((i) => ({ service: 'web', instance: name(i), node: 'a' })),
        services: { web: service({ kind: 'replicas', count: 13 }) },
        versions: Object.fromEntries(assigned.map((i) => [name(i), { version: 'v1' }])),
        local,
        busy: new Set(busy.map(name))
      }))
      const stopped = new Set(p.actions.filter((x) => x.kind === 'stop').map((x) => x.kind === 'stop' ? x.instance : ''))
      const touched = p.actions.map((x) => x.kind === 'start' ? x.assignment.instance : x.instance)
      const shouldStop = runningHere.filter((i) => !assigned.includes(i) && !busy.includes(i)).map(name)
      return stopped.size === shouldStop.length && shouldStop.every((id) => stopped.has(id)) && touched.every((id) => !busy.map(name).includes(id))
    }
  ), { numRuns: 1000 })
  t.pass()
})

test('plan property: an instance is replaced only once every instance of its service numbered before it is ready on the new version', (t) => {
  fc.assert(fc.property(
    fc.array(fc.record({ node: fc.constantFrom('a', 'b'), version: fc.constantFrom('v1', 'v2'), state: fc.constantFrom('ready', 'starting', 'stopped') }), { minLength: 1, maxLength: 14 }),
    (instances) => {
      const assignments = instances.map((x, i) => ({ service: 'web', instance: `web-${i}`, node: x.node }))
      const onB = Object.fromEntries(instances.flatMap((x, i) => x.node === 'b' ? [[`web-${i}`, { version: x.version, state: x.state }]] : []))
      const local = Object.fromEntries(instances.flatMap((x, i) => x.node === 'a' ? [[`web-${i}`, { service: 'web', version: x.version, state: x.state }]] : []))
      const p = plan(input({
        assignments,
        services: { web: service({ kind: 'replicas', count: instances.length }) },
        versions: Object.fromEntries(Object.keys(local).map((id) => [id, { version: 'v2' }])),
        local,
        table: tableOf(member('a'), member('b', 'alive', onB))
      }))
      return p.actions.every((x) => {
        if (x.kind !== 'replace') return true
        const n = Number(x.instance.slice('web-'.length))
        return instances.slice(0, n).every((y) => y.version === 'v2' && y.state === 'ready')
      })
    }
  ), { numRuns: 1000 })
  t.pass()
})

/**
 * What the Reconciler would do with the actions, as the next plan sees it; meanwhile what
 * was starting (or in backoff) has come up.
 */
function applied (local: Record<string, LocalInstance>, actions: PlanAction[]): Record<string, LocalInstance> {
  const next = Object.fromEntries(Object.entries(local).map(([id, i]) => [id, i.state === 'starting' || i.state === 'backoff' ? { ...i, state: 'ready' } : i]))
  for (const x of actions) {
    if (x.kind === 'start') next[x.assignment.instance] = { service: x.assignment.service, version: x.version, state: 'ready' }
    else if (x.kind === 'stop' || x.kind === 'replace') delete next[x.instance]
    else if (x.kind === 'pause' && next[x.instance] !== undefined) next[x.instance] = { ...next[x.instance], state: 'paused' }
    else if (x.kind === 'resume' && next[x.instance] !== undefined) next[x.instance] = { ...next[x.instance], state: 'ready' }
  }
  return next
}

test('plan property: applying the plan converges, and once applied the plan is idempotent: nothing more to start, stop or replace', (t) => {
  fc.assert(fc.property(
    fc.record({ web: fc.integer({ min: 0, max: 12 }), one: fc.boolean(), agent: fc.boolean() }),
    fc.dictionary(fc.constantFrom(...Array.from({ length: 14 }, (_, i) => `web-${i}`), 'one-0', 'agent@a', 'gone-0'), fc.record({ version: fc.constantFrom('v1', 'v2'), state: fc.constantFrom('ready', 'starting', 'paused', 'backoff') })),
    (want, runningNow) => {
      const services: Record<string, ServiceSpec> = { web: service({ kind: 'replicas', count: want.web }) }
      if (want.one) services.one = service({ kind: 'singleton' })
      if (want.agent) services.agent = service({ kind: 'every' })
      const spec = specOf(services)
      const sched: Schedule = schedule({ spec, table: tableOf(member('a')), hubs: ['a'] })
      const versions = Object.fromEntries(sched.assignments.map((x) => [x.instance, { version: 'v2' }]))
      let local: Record<string, LocalInstance> = Object.fromEntries(Object.entries(runningNow).map(([id, s]) => [id, { service: id.replace(/(-\d+|@.*)$/, ''), ...s }]))
      const at = (l: Record<string, LocalInstance>): PlanInput => input({ schedule: sched, services, versions, local: l })
      let rounds = 0
      for (; rounds < 2 * 16; rounds++) {
        const p = plan(at(local))
        const next = applied(local, p.actions)
        if (JSON.stringify(next) === JSON.stringify(local)) break
        local = next
      }
      const last = plan(at(local))
      const settled = last.actions.every((x) => x.kind === 'keep')
      const again = plan(at(applied(local, last.actions)))
      const matches = JSON.stringify(Object.keys(local).sort()) === JSON.stringify(sched.assignments.map((x) => x.instance).sort()) &&
        Object.values(local).every((i) => i.version === 'v2' && i.state === 'ready')
      return rounds < 2 * 16 && settled && JSON.stringify(again) === JSON.stringify(last) && matches
    }
  ), { numRuns: 500 })
  t.pass()
})
