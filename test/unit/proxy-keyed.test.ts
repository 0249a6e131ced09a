import test from 'ava'
import fc from 'fast-check'
import { keyOf, owner } from '../../node/proxy/keyed'
import { validateService } from '../../node/desired/schema'

test('keyed routing: the owner does not depend on the order instances are listed in', (t) => {
  fc.assert(fc.property(fc.string(), fc.uniqueArray(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 8 }), (key, ids) => {
    const reversed = [...ids].reverse()
    return owner(key, ids) === owner(key, reversed) && ids.includes(owner(key, ids) as string)
  }))
  t.is(owner('k', []), undefined)
})

test('keyed routing: a third instance joining moves about a third of the keys, all to it', (t) => {
  const keys = Array.from({ length: 3000 }, (_, i) => `project-${i}`)
  const before = keys.map((k) => owner(k, ['web-0', 'web-1']))
  const after = keys.map((k) => owner(k, ['web-0', 'web-1', 'web-2']))
  const moved = keys.filter((_, i) => before[i] !== after[i])
  t.true(moved.every((k) => owner(k, ['web-0', 'web-1', 'web-2']) === 'web-2'), 'keys move only to the new instance')
  const share = moved.length / keys.length
  t.true(share > 0.28 && share < 0.39, `moved ${(share * 100).toFixed(1)} %`)
  // And one leaving moves only its own keys.
  const without = keys.map((k) => owner(k, ['web-0', 'web-2']))
  t.true(keys.every((_, i) => after[i] === 'web-1' || without[i] === after[i]))
})

test('keyed routing: the key is a header or a path segment', (t) => {
  t.is(keyOf({ key: { header: 'X-Project' } }, { 'x-project': 'alpha' }, '/'), 'alpha')
  t.is(keyOf({ key: { header: 'X-Project' } }, {}, '/'), undefined)
  t.is(keyOf({ key: { pathSegment: 1 } }, {}, '/projects/be%20ta/files?x=1'), 'be ta')
  t.is(keyOf({ key: { pathSegment: 3 } }, {}, '/projects/beta'), undefined)
})

test('keyed routing: route and admission are checked by the schema', (t) => {
  const base = { run: { command: 'x' }, placement: { kind: 'every' } }
  t.true(validateService({ ...base, route: { key: { header: 'X-Project' } }, admission: { maxInFlight: 2 } }).ok)
  const both = validateService({ ...base, route: { key: { header: 'X-Project', pathSegment: 0 } } })
  t.false(both.ok)
  t.true(!both.ok && both.problems.some((p) => p.message === 'must name one of header or pathSegment, not both'))
  t.false(validateService({ ...base, admission: { maxInFlight: 0 } }).ok)
})
