import test from 'ava'
import fc from 'fast-check'
import { copyHolders, safeName } from '../../node/state'

const ids = fc.uniqueArray(fc.stringMatching(/^node-[a-z0-9]{1,6}$/), { minLength: 1, maxLength: 12 })

test('copy holders: the same instance and members give the same holders in any order', (t) => {
  fc.assert(fc.property(ids, fc.integer({ min: 1, max: 4 }), (members, copies) => {
    const a = copyHolders('redis-0', members, copies)
    const b = copyHolders('redis-0', [...members].reverse(), copies)
    return JSON.stringify(a) === JSON.stringify(b) && a.length === Math.min(copies, members.length)
  }))
  t.pass()
})

test('copy holders: a member that leaves moves only the copy it held', (t) => {
  fc.assert(fc.property(ids, fc.integer({ min: 1, max: 4 }), fc.nat(), (members, copies, pick) => {
    const before = copyHolders('db-1', members, copies)
    const gone = members[pick % members.length]
    const after = copyHolders('db-1', members.filter((m) => m !== gone), copies)
    const kept = before.filter((m) => m !== gone)
    return kept.every((m) => after.includes(m)) && (before.includes(gone) || JSON.stringify(before) === JSON.stringify(after))
  }))
  t.pass()
})

test('copy holders: a member that joins takes at most one copy', (t) => {
  fc.assert(fc.property(ids, fc.integer({ min: 1, max: 4 }), (members, copies) => {
    const newcomer = 'node-zzzzzzz'
    const before = copyHolders('web-3', members, copies)
    const after = copyHolders('web-3', [...members, newcomer], copies)
    return after.filter((m) => !before.includes(m)).length <= 1 && after.filter((m) => m !== newcomer).every((m) => before.includes(m))
  }))
  t.pass()
})

test('copy holders: different instances spread over different members', (t) => {
  const members = Array.from({ length: 10 }, (_, i) => `node-${i}`)
  const first = new Set(Array.from({ length: 50 }, (_, i) => copyHolders(`web-${i}`, members, 1)[0]))
  t.true(first.size >= 6, `50 instances landed on only ${first.size} of 10 members`)
})

test('state paths: instance ids become one safe path segment, distinct ids stay distinct', (t) => {
  t.is(safeName('web-0'), 'web-0')
  t.is(safeName('agent@node-1'), 'agent@node-1')
  t.is(safeName('..'), '%2E%2E')
  t.is(safeName('a/../b'), 'a%2F%2E%2E%2Fb')
  t.is(safeName('x.stale-1'), 'x%2Estale-1')
  fc.assert(fc.property(fc.string(), fc.string(), (a, b) => {
    const sa = safeName(a)
    return !sa.includes('/') && !sa.startsWith('.') && sa.length <= 150 && (a === b || sa !== safeName(b))
  }))
})
