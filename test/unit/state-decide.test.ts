import test from 'ava'
import { decide, formatAge, type DecisionInput, type Source } from '../../node/state'

const none = { exists: false, ageMs: 0 }
const input = (o: Partial<DecisionInput>): DecisionInput => ({ self: 'a', mode: 'replicate', local: none, seen: { generation: 0 }, sources: [], ...o })
const copy = (node: string, generation: number, ageMs: number): Source => ({ node, kind: 'copy', generation, ageMs, running: false, hook: false })
const live = (node: string, generation: number, ageMs: number, running = false, hook = false): Source => ({ node, kind: 'live', generation, ageMs, running, hook })

test('state decision: the first start anywhere starts empty at generation 1', (t) => {
  for (const mode of ['local', 'migrate', 'replicate'] as const) {
    t.deepEqual(decide(input({ mode })), { kind: 'empty', generation: 1, stale: undefined, reason: 'starts empty (first start, generation 1)' })
  }
})

test('state decision: a directory at least as new as anything seen is kept with its generation', (t) => {
  const d = decide(input({ local: { exists: true, generation: 4, ageMs: 10 }, seen: { generation: 4, node: 'b' }, sources: [copy('b', 3, 5)] }))
  t.deepEqual(d, { kind: 'keep', generation: 4, reason: 'kept (generation 4)' })
  t.is(decide(input({ mode: 'local', local: { exists: true, generation: 2, ageMs: 0 } })).kind, 'keep')
})

test('state decision: a directory with no marker is adopted as generation 1 only when nobody knows of another', (t) => {
  t.deepEqual(decide(input({ local: { exists: true, ageMs: 0 } })), { kind: 'keep', generation: 1, reason: 'kept a directory that had no generation record; now generation 1' })
  const d = decide(input({ mode: 'local', local: { exists: true, ageMs: 0 }, seen: { generation: 1, node: 'b' } }))
  t.like(d, { kind: 'empty', generation: 2, stale: 0 })
})

test('state decision: mode local never copies; a stale directory is moved aside and the note says where the state is', (t) => {
  const d = decide(input({ mode: 'local', local: { exists: true, generation: 1, ageMs: 0 }, seen: { generation: 2, node: 'b' }, sources: [live('b', 2, 0)] }))
  t.deepEqual(d, { kind: 'empty', generation: 3, stale: 1, reason: 'starts empty: the state of generation 2 stayed on b (mode local); now generation 3' })
})

test('state decision: the fail-back bug: an old directory is never kept when a newer generation ran elsewhere', (t) => {
  // a ran generation 1, crashed; b took over as generation 2; now the instance comes back to a.
  for (const mode of ['local', 'migrate', 'replicate'] as const) {
    const d = decide(input({ mode, local: { exists: true, generation: 1, ageMs: 60_000 }, seen: { generation: 2, node: 'b' }, sources: [live('b', 2, 100)] }))
    t.not(d.kind, 'keep', mode)
    t.is(d.generation, 3, mode)
  }
  // Known only by asking (gossip missed it, b no longer runs it): the same.
  const d = decide(input({ mode: 'migrate', local: { exists: true, generation: 1, ageMs: 0 }, sources: [live('b', 2, 100)] }))
  t.like(d, { kind: 'restore', generation: 3, stale: 1, from: { node: 'b', kind: 'live' } })
})

test('state decision: migrate copies the newest directory, not a snapshot', (t) => {
  const d = decide(input({ mode: 'migrate', seen: { generation: 2, node: 'b' }, sources: [copy('c', 2, 10), live('b', 2, 2400)] }))
  t.like(d, { kind: 'restore', generation: 3, from: { node: 'b', kind: 'live' } })
  t.is(d.reason, 'copied the directory of generation 2 from b (stopped 2.4 s ago); now generation 3')
})

test('state decision: migrate with the directory out of reach starts empty and says where it was', (t) => {
  const d = decide(input({ mode: 'migrate', seen: { generation: 2, node: 'b' }, sources: [copy('c', 2, 10)] }))
  t.deepEqual(d, { kind: 'empty', generation: 3, stale: undefined, reason: 'starts empty: no reachable member holds its directory (generation 2, last on b); now generation 3' })
})

test('state decision: replicate restores the freshest snapshot of the newest generation', (t) => {
  const d = decide(input({ seen: { generation: 2, node: 'b' }, sources: [copy('c', 1, 5), copy('d', 2, 9000), copy('e', 2, 2400)] }))
  t.like(d, { kind: 'restore', generation: 3, from: { node: 'e', kind: 'copy' } })
  t.is(d.reason, 'restored the snapshot of generation 2 from e, taken 2.4 s ago; now generation 3')
})

test('state decision: a stopped directory beats an older snapshot of the same generation; this node\'s own copy wins a tie', (t) => {
  t.like(decide(input({ sources: [copy('c', 2, 3000), live('b', 2, 1000)] })), { from: { node: 'b', kind: 'live' } })
  t.like(decide(input({ sources: [copy('c', 2, 3000), copy('a', 2, 3000)] })), { from: { node: 'a', kind: 'copy' } })
  t.regex(decide(input({ sources: [copy('a', 2, 3000)] })).reason, /from this node, taken 3\.0 s ago/)
})

test('state decision: a directory still in use elsewhere is chosen (prepare waits for it to stop)', (t) => {
  t.like(decide(input({ sources: [copy('c', 2, 100), live('b', 2, 0, true, true)] })), { from: { node: 'b', running: true } })
})

test('state decision: when only older data is reachable it is used, and the note says what is missing', (t) => {
  const d = decide(input({ seen: { generation: 3, node: 'c' }, sources: [copy('b', 2, 1000)] }))
  t.like(d, { kind: 'restore', generation: 4, from: { node: 'b', generation: 2 } })
  t.is(d.reason, 'restored the snapshot of generation 2 from b, taken 1.0 s ago; now generation 4; generation 3 (last on c) is not reachable: what was written there is not in it')
})

test('state decision: this node\'s own stale directory is used in place only when it is the freshest reachable', (t) => {
  const own = decide(input({ local: { exists: true, generation: 2, ageMs: 500 }, seen: { generation: 3, node: 'c' }, sources: [copy('b', 1, 10)] }))
  t.like(own, { kind: 'restore', generation: 4, stale: undefined, from: { node: 'a', kind: 'live', generation: 2 } })
  t.regex(own.reason, /^continues with this node's directory of generation 2, the freshest reachable; now generation 4; generation 3 \(last on c\) is not reachable/)
  const other = decide(input({ local: { exists: true, generation: 2, ageMs: 500 }, seen: { generation: 3, node: 'c' }, sources: [copy('b', 3, 10)] }))
  t.like(other, { kind: 'restore', stale: 2, from: { node: 'b' } })
})

test('state decision: a marker whose directory is gone starts empty above it', (t) => {
  t.deepEqual(decide(input({ mode: 'local', local: { exists: false, generation: 5, ageMs: 0 } })), {
    kind: 'empty', generation: 6, stale: undefined, reason: 'starts empty: the directory of generation 5 is gone from this node; now generation 6'
  })
})

test('state decision: the new generation is above everything known, whatever the order of the sources', (t) => {
  const sources = [copy('b', 7, 1), live('c', 3, 1), copy('d', 5, 1)]
  for (const order of [sources, [...sources].reverse()]) {
    t.is(decide(input({ local: { exists: true, generation: 6, ageMs: 0 }, seen: { generation: 4, node: 'x' }, sources: order })).generation, 8)
  }
})

test('state ages read as a person says them', (t) => {
  t.is(formatAge(850), '850 ms')
  t.is(formatAge(2400), '2.4 s')
  t.is(formatAge(600_000), '10 min')
  t.is(formatAge(5 * 3_600_000), '5.0 h')
  t.is(formatAge(3 * 86_400_000), '3.0 days')
})

test('state decision: migrate takes the copy a leaving node handed over, and no other copy', (t) => {
  const handed = { ...copy('a', 2, 20), takenBy: 'b' }
  const d = decide(input({ mode: 'migrate', seen: { generation: 2, node: 'b' }, sources: [handed] }))
  t.like(d, { kind: 'restore', generation: 3, from: { node: 'a', kind: 'copy' } })
  t.is(d.reason, 'copied the directory of generation 2 that b handed over when it left; now generation 3')
  const older = { ...copy('a', 2, 20), takenBy: 'c' }
  t.is(decide(input({ mode: 'migrate', seen: { generation: 2, node: 'b' }, sources: [older] })).kind, 'empty', 'a snapshot another node took is not the directory')
  // The hand-over is the stopped directory itself, already here: no second transfer.
  t.like(decide(input({ mode: 'migrate', seen: { generation: 2, node: 'b' }, sources: [handed, live('b', 2, 100)] })), { from: { node: 'a', kind: 'copy' } })
})
