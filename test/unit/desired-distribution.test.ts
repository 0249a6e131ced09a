import test from 'ava'
import { retryDelayMs } from '../../node/desired/distribution'
import { followTarget } from '../../node/desired/state'
import type { Member, MemberTable } from '../../node/membership'

function member (id: string, spec: string | undefined, status: Member['status'] = 'alive'): Member {
  return {
    id,
    address: `127.0.0.1:${7000 + id.charCodeAt(id.length - 1)}`,
    incarnation: 1,
    heartbeat: 1,
    status,
    hub: true,
    ...(spec === undefined ? {} : { spec }),
    characteristics: { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {}, startedAt: 0 }
  }
}

function table (...members: Member[]): MemberTable {
  return Object.fromEntries(members.map((m) => [m.id, m]))
}

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)

test('desired distribution: a follower takes the commit most alive hubs run, from the strongest hub running it', (t) => {
  const members = table(member('h1', A), member('h2', B), member('h3', B), member('me', undefined))
  t.deepEqual(followTarget(members, ['h1', 'h2', 'h3'], 'me'), { commit: B, hub: 'h2', address: members.h2.address })
})

test('desired distribution: a tie goes to the commit of the stronger hub', (t) => {
  const members = table(member('h1', A), member('h2', B), member('me', undefined))
  t.deepEqual(followTarget(members, ['h2', 'h1'], 'me'), { commit: B, hub: 'h2', address: members.h2.address })
  t.deepEqual(followTarget(members, ['h1', 'h2'], 'me'), { commit: A, hub: 'h1', address: members.h1.address })
})

test('desired distribution: dead hubs, hubs on a directory, hubs with no spec yet and the node itself are not followed', (t) => {
  const members = table(member('h1', A, 'dead'), member('h2', 'dir:0123456789ab'), member('h3', undefined), member('me', B), member('h4', B, 'suspect'))
  t.is(followTarget(members, ['h1', 'h2', 'h3', 'me', 'gone'], 'me'), undefined)
  t.is(followTarget(members, ['h4'], 'me'), undefined, 'only alive hubs count')
})

test('desired distribution: a hub that failed a commit is asked again after 0.5 s, doubling, at most a minute apart', (t) => {
  t.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map(retryDelayMs), [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000])
  t.is(retryDelayMs(100), 60_000)
})
