import test from 'ava'
import fc from 'fast-check'
import { Admission } from '../../node/proxy/admission'
import { RecentKeys } from '../../node/proxy/recent-keys'
import { validateService } from '../../node/desired/schema'

test('maxKeys: an instance holding its limit of keys refuses a new key and still lets held keys in', (t) => {
  const k = new RecentKeys(60_000)
  t.true(k.admit('web-1', 'a', 2, 0))
  t.true(k.admit('web-1', 'b', 2, 10))
  t.false(k.admit('web-1', 'c', 2, 20), 'a third key is refused')
  t.true(k.admit('web-1', 'a', 2, 30), 'a held key gets in')
  t.true(k.admit('web-2', 'c', 2, 30), 'another instance has its own room')
  t.is(k.held('web-1', 30), 2)
})

test('maxKeys: a key not seen for keyIdleMs makes room; a refreshed key stays held', (t) => {
  const k = new RecentKeys(1000)
  k.admit('w', 'a', 2, 0)
  k.admit('w', 'b', 2, 500)
  k.admit('w', 'a', 2, 900) // refreshed: b is now the oldest
  t.false(k.admit('w', 'c', 2, 1400), 'b was seen 900 ms ago: still held')
  t.true(k.admit('w', 'c', 2, 1500), 'b idle for 1000 ms: room for c')
  t.is(k.held('w', 1500), 2)
  t.is(k.held('w', 5000), 0)
  k.forget('w')
  t.deepEqual(k.instances(), [])
})

test('maxKeys: never more than max keys held, whatever the requests and times', (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'), fc.integer({ min: 0, max: 300 }))), (max, reqs) => {
    const k = new RecentKeys(500)
    let now = 0
    for (const [key, dt] of reqs) {
      now += dt
      const before = k.held('w', now)
      const ok = k.admit('w', key, max, now)
      if (!ok && before < max) return false
      if (k.held('w', now) > max) return false
    }
    return true
  }))
  t.pass()
})

test('admission: refusals are counted by service, on each proxy\'s own admission', (t) => {
  const x = new Admission(60_000)
  const y = new Admission(60_000)
  const one = x.admit('web', 'web-0', { maxInFlight: 1 }, undefined, 0)
  t.true('release' in one)
  t.true('refuse' in x.admit('web', 'web-0', { maxInFlight: 1 }, undefined, 0))
  t.true('refuse' in x.admit('web', 'web-0', { maxInFlight: 1 }, undefined, 0))
  t.true('release' in x.admit('api', 'api-0', { maxKeys: 1 }, 'alpha', 0))
  t.true('refuse' in x.admit('api', 'api-0', { maxKeys: 1 }, 'beta', 0))
  t.deepEqual(x.refusals(), { web: 2, api: 1 })
  t.deepEqual(y.refusals(), {}, 'another node\'s proxy in the same process counts its own')
})

test('admission: maxKeys is checked by the schema', (t) => {
  const base = { run: { command: 'x' }, placement: { kind: 'singleton' } }
  t.true(validateService({ ...base, route: { key: { header: 'X-Project' } }, admission: { maxKeys: 100, maxInFlight: 2 } }).ok)
  t.false(validateService({ ...base, admission: { maxKeys: 0 } }).ok)
  t.false(validateService({ ...base, admission: { maxKeys: 1.5 } }).ok)
})
