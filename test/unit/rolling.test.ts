import test from 'ava'
import type { Member, MemberStatus, MemberTable } from '../../node/membership/types'
import { mayReplace, runningElsewhere, singletonQuorum } from '../../node/supervisor/rolling'

function member (id: string, status: MemberStatus = 'alive', instances: Member['instances'] = {}): Member {
  return { id, address: `${id}:1`, incarnation: 1, heartbeat: 1, status, hub: false, instances, characteristics: { cpus: 1, memoryMb: 1, arch: 'x64', labels: {}, startedAt: 0 } }
}
const table = (...ms: Member[]): MemberTable => Object.fromEntries(ms.map((m) => [m.id, m]))

const touch = (...ids: string[]): Set<string> => new Set(ids)

test('singleton quorum: in touch with a majority of the members that did not leave keeps singletons', (t) => {
  const three = table(member('a'), member('b'), member('c', 'dead'))
  t.true(singletonQuorum(three, 'a', touch('b')).ok)
  t.false(singletonQuorum(three, 'a', touch()).ok)
  t.true(singletonQuorum(table(member('a'), member('b', 'left'), member('c', 'left')), 'a', touch()).ok, 'members that left do not count')
})

test('singleton quorum: a node cut off gives singletons up even while it still thinks the others alive', (t) => {
  const q = singletonQuorum(table(member('a'), member('b'), member('c')), 'c', touch())
  t.false(q.ok)
  t.is(q.reason, 'in touch with 1 of 3 members: not a majority, so no singleton runs on this side')
})

test('singleton quorum: at exactly half, the side with the lowest id keeps singletons', (t) => {
  const two = table(member('a'), member('b', 'dead'))
  t.true(singletonQuorum(two, 'a', touch()).ok)
  t.false(singletonQuorum(table(member('a', 'dead'), member('b')), 'b', touch()).ok)
})

test('rolling: an instance is replaced only when every earlier one is ready on the new version', (t) => {
  const assignments = [
    { service: 'web', instance: 'web-0', node: 'a' },
    { service: 'web', instance: 'web-1', node: 'b' },
    { service: 'api', instance: 'api-0', node: 'a' }
  ]
  const t1 = table(member('a', 'alive', { 'web-0': { version: 'v2', state: 'starting' } }), member('b'))
  t.deepEqual(mayReplace('web-1', 'v2', assignments, t1, () => undefined), { ok: false, waitingFor: 'web-0' })
  const t2 = table(member('a', 'alive', { 'web-0': { version: 'v2', state: 'ready' } }), member('b'))
  t.deepEqual(mayReplace('web-1', 'v2', assignments, t2, () => undefined), { ok: true })
  t.deepEqual(mayReplace('web-0', 'v2', assignments, t1, () => undefined), { ok: true }, 'the first goes at once')
})

test('handover: a singleton is still running elsewhere until that node says it stopped or is dead', (t) => {
  t.deepEqual(runningElsewhere(table(member('a'), member('b', 'alive', { 'one-0': { version: 'v', state: 'stopping' } })), 'one-0', 'a'), [{ node: 'b', version: 'v', state: 'stopping' }])
  t.deepEqual(runningElsewhere(table(member('a'), member('b', 'alive', { 'one-0': { version: 'v', state: 'stopped' } })), 'one-0', 'a'), [])
  t.deepEqual(runningElsewhere(table(member('a'), member('b', 'dead', { 'one-0': { version: 'v', state: 'ready' } })), 'one-0', 'a'), [])
})

test('handover: a member reported dead still holds its singleton while this node is in touch with it (a stale "dead")', (t) => {
  const stale = table(member('a'), member('b', 'dead', { 'one-0': { version: 'v', state: 'ready' } }))
  t.deepEqual(runningElsewhere(stale, 'one-0', 'a', new Set(['b'])), [{ node: 'b', version: 'v', state: 'ready' }])
  t.deepEqual(runningElsewhere(stale, 'one-0', 'a', new Set()), [])
})

test('rolling: instances go in the order of their numbers, so web-10 waits for web-9 (not before it, as strings sort)', (t) => {
  const assignments = ['web-9', 'web-10'].map((instance) => ({ service: 'web', instance, node: 'a' }))
  const old = table(member('a', 'alive', { 'web-9': { version: 'v1', state: 'ready' }, 'web-10': { version: 'v1', state: 'ready' } }))
  t.deepEqual(mayReplace('web-10', 'v2', assignments, old, () => undefined), { ok: false, waitingFor: 'web-9' })
  t.deepEqual(mayReplace('web-9', 'v2', assignments, old, () => undefined), { ok: true }, 'web-9 does not wait for web-10')
})
