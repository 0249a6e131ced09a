/**
 * Properties of `replay`: it is a function of the entries at or before `at` alone (their
 * order of arrival does not matter), and a model cluster driven by random operations,
 * journaled as it goes, is rebuilt exactly at every moment of its history.
 */
import test from 'ava'
import fc from 'fast-check'
import { describeEvent, replay, type JournalBody, type JournalEvent } from '../../node/journal'

const NODES = ['a', 'b', 'c']
const SERVICES = ['web', 'db']
const BASE = 1_700_000_000_000

type Op =
  | { op: 'member', node: string, status: 'alive' | 'suspect' | 'dead' | 'left' }
  | { op: 'instance', node: string, service: string, n: number, state: 'starting' | 'ready' | 'unhealthy' | 'backoff' | 'stopped' | 'failed' }
  | { op: 'restart', node: string }
  | { op: 'hubs', hubs: string[] }
  | { op: 'spec', node: string, version: string }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('member' as const), node: fc.constantFrom(...NODES), status: fc.constantFrom('alive' as const, 'suspect' as const, 'dead' as const, 'left' as const) }),
  fc.record({ op: fc.constant('instance' as const), node: fc.constantFrom(...NODES), service: fc.constantFrom(...SERVICES), n: fc.integer({ min: 1, max: 2 }), state: fc.constantFrom('starting' as const, 'ready' as const, 'unhealthy' as const, 'backoff' as const, 'stopped' as const, 'failed' as const) }),
  fc.record({ op: fc.constant('restart' as const), node: fc.constantFrom(...NODES) }),
  fc.record({ op: fc.constant('hubs' as const), hubs: fc.subarray(NODES) }),
  fc.record({ op: fc.constant('spec' as const), node: fc.constantFrom(...NODES), version: fc.constantFrom('v1', 'v2', 'v3') })
)

interface Model { members: Record<string, string>, instances: Map<string, string>, hubs: string[], specByNode: Record<string, string> }

/** Runs the operations on a plain model, journaling each as the node that saw it would, with the model after each. */
function run (ops: Op[], gaps: number[]): { events: JournalEvent[], snapshots: Array<{ at: number, model: Model }> } {
  const m: Model = { members: {}, instances: new Map(), hubs: [], specByNode: {} }
  const events: JournalEvent[] = []
  const snapshots: Array<{ at: number, model: Model }> = []
  const seq: Record<string, number> = {}
  let at = BASE
  const emit = (node: string, body: JournalBody): void => {
    seq[node] = (seq[node] ?? 0) + 1
    events.push({ ...body, at, node, seq: seq[node]!, text: describeEvent(body) } as JournalEvent)
  }
  const dropNode = (node: string): void => { for (const k of [...m.instances.keys()]) if (k.startsWith(node + '/')) m.instances.delete(k) }
  ops.forEach((o, i) => {
    at += gaps[i % gaps.length]!
    switch (o.op) {
      case 'member': {
        const from = m.members[o.node]
        if (from === o.status) return
        emit(NODES.find((n) => n !== o.node)!, { kind: 'member', member: o.node, status: o.status, ...(from === undefined ? {} : { from: from as 'alive' }), facts: { address: `${o.node}:7400` } })
        m.members[o.node] = o.status
        if (o.status === 'dead' || o.status === 'left') dropNode(o.node)
        break
      }
      case 'instance': {
        const id = `${o.service}-${o.n}`
        emit(o.node, { kind: 'instance', instance: id, service: o.service, version: 'x', state: o.state, restarts: 0 })
        if (o.state === 'stopped') m.instances.delete(`${o.node}/${id}`)
        else m.instances.set(`${o.node}/${id}`, o.state)
        break
      }
      case 'restart':
        emit(o.node, { kind: 'node', what: 'started' })
        dropNode(o.node)
        if (m.members[o.node] !== undefined) m.members[o.node] = 'alive'
        break
      case 'hubs': emit('a', { kind: 'hubs', hubs: o.hubs, promoted: [], demoted: [] }); m.hubs = o.hubs; break
      case 'spec': emit(o.node, { kind: 'spec-applied', version: o.version, summary: o.version, services: SERVICES }); m.specByNode[o.node] = o.version; break
    }
    snapshots.push({ at, model: { members: { ...m.members }, instances: new Map(m.instances), hubs: [...m.hubs], specByNode: { ...m.specByNode } } })
  })
  return { events, snapshots }
}

test('journal replay: the model cluster is rebuilt at every moment of its history', (t) => {
  fc.assert(fc.property(fc.array(opArb, { maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 5 }), (ops, gaps) => {
    const { events, snapshots } = run(ops, gaps)
    for (const { at, model } of snapshots) {
      const r = replay(events, at)
      const members = Object.fromEntries(Object.entries(r.members).map(([id, x]) => [id, x.status]))
      if (JSON.stringify(members) !== JSON.stringify(model.members)) return false
      const instances = new Map(r.instances.map((i) => [`${i.node}/${i.instance}`, i.state]))
      if (JSON.stringify([...instances].sort()) !== JSON.stringify([...model.instances].sort())) return false
      if (JSON.stringify(r.hubs) !== JSON.stringify(model.hubs)) return false
      if (JSON.stringify(r.specByNode) !== JSON.stringify(model.specByNode)) return false
    }
    return true
  }), { numRuns: 300 })
  t.pass()
})

test('journal replay: the order entries arrive in does not matter, nor entries after the moment', (t) => {
  fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 100_000 }), (ops, gaps, offset) => {
    const { events } = run(ops, gaps)
    const at = BASE + offset
    const shuffled = [...events].reverse()
    const a = replay(events, at)
    return JSON.stringify(a) === JSON.stringify(replay(shuffled, at)) &&
      JSON.stringify(a) === JSON.stringify(replay(events.filter((e) => e.at <= at), at))
  }), { numRuns: 300 })
  t.pass()
})

test('journal replay: before anything happened the cluster is empty', (t) => {
  const r = replay([], BASE)
  t.deepEqual(r.members, {})
  t.deepEqual(r.instances, [])
  t.is(r.spec, undefined)
})
