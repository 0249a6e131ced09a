import test from 'ava'
import fc from 'fast-check'
import { OriginError } from '../../node/errors'
import { imageSchema } from '../../node/config'
import { defaultHubPolicy } from '../../node/hubs/types'
import { ROLES } from '../../node/keys/types'
import { validator } from '../../node/validate'
import {
  CERT_NAME, CERT_ROLES, PEER_ROLES, RANK_KEYS, compareInstances, instanceBefore, isNodeId, nodeIdSchema, normalizeSerial, sameSerial
} from '../../node/vocabulary'

const sign = (n: number): number => Math.sign(n)

// Instance ids as origin makes them (`svc-<n>`, `svc@node`) and odd ones, from a small
// alphabet so that services, digits and nodes collide often.
const service = fc.stringMatching(/^[a-c]{1,2}(-[0-9])?$/)
const instance = fc.oneof(
  fc.tuple(service, fc.nat({ max: 1200 })).map(([s, n]) => `${s}-${n}`),
  fc.tuple(service, fc.stringMatching(/^[a-c0-9-]{1,3}$/)).map(([s, node]) => `${s}@${node}`),
  fc.stringMatching(/^[a-c0-9@-]{0,6}$/)
)

test('vocabulary: instance order is total: 0 only for the same id, antisymmetric, transitive', (t) => {
  fc.assert(fc.property(instance, instance, instance, (a, b, c) => {
    if ((compareInstances(a, b) === 0) !== (a === b)) return false
    if (sign(compareInstances(a, b)) !== -sign(compareInstances(b, a))) return false
    if (compareInstances(a, b) < 0 && compareInstances(b, c) < 0 && !(compareInstances(a, c) < 0)) return false
    return true
  }), { numRuns: 5000 })
  t.pass()
})

test('vocabulary: instances of one service are in index order, then per-node ones by node', (t) => {
  fc.assert(fc.property(service, fc.nat(), fc.nat(), (s, n, m) => sign(compareInstances(`${s}-${n}`, `${s}-${m}`)) === sign(n - m)))
  fc.assert(fc.property(service, fc.nat(), fc.stringMatching(/^[a-z0-9-]{1,8}$/), (s, n, node) => instanceBefore(`${s}-${n}`, `${s}@${node}`)))
  t.deepEqual(['web-10', 'web@b', 'api-3', 'web-2', 'web@a', 'web-0'].sort(compareInstances), ['api-3', 'web-0', 'web-2', 'web-10', 'web@a', 'web@b'])
  // Past what a double holds exactly: digits compared as digits.
  t.true(instanceBefore('w-9007199254740992', 'w-9007199254740993'))
})

test('vocabulary: sorting instances gives one order whatever order they came in', (t) => {
  fc.assert(fc.property(fc.array(instance, { maxLength: 30 }), (ids) => {
    const once = [...ids].sort(compareInstances)
    const again = [...ids].reverse().sort(compareInstances)
    return JSON.stringify(once) === JSON.stringify(again)
  }))
  t.pass()
})

const hexDigits = fc.array(fc.constantFrom(...'0123456789abcdefABCDEF'), { minLength: 1, maxLength: 40 }).map((d) => d.join(''))

test('vocabulary: a normalized serial is upper-case whole bytes of the same number, and normalizing twice changes nothing', (t) => {
  fc.assert(fc.property(hexDigits, (hex) => {
    const n = normalizeSerial(hex)
    return /^(0|([0-9A-F]{2})+)$/.test(n) && BigInt(`0x${n}`) === BigInt(`0x${hex}`) && normalizeSerial(n) === n
  }), { numRuns: 2000 })
  t.pass()
})

test('vocabulary: case, colons, white space and leading zeros do not make another serial', (t) => {
  fc.assert(fc.property(hexDigits, fc.nat({ max: 4 }), (hex, zeros) => {
    const colons = hex.toLowerCase().match(/.{1,2}/g)?.join(':') ?? ''
    const variants = [hex.toUpperCase(), hex.toLowerCase(), colons, ` ${'0'.repeat(zeros)}${hex} `]
    return variants.every((v) => sameSerial(v, hex) && normalizeSerial(v) === normalizeSerial(hex))
  }))
  t.is(normalizeSerial('0a:11'), '0A11')
  t.is(normalizeSerial('a11'), '0A11')
  t.is(normalizeSerial('000'), '0')
  t.false(sameSerial('0A11', '0A12'))
  const err = t.throws(() => normalizeSerial('0x12'))
  t.true(err instanceof OriginError && err.code === 'E_CERT_INVALID')
})

test('vocabulary: the node-id pattern and its JSON Schema accept the same strings', (t) => {
  const check = validator<string>(nodeIdSchema, 'id')
  const accepts = (s: string): boolean => { try { check(s); return true } catch { return false } }
  const near = fc.stringMatching(/^[a-zA-Z0-9._@ -]{0,70}$/)
  fc.assert(fc.property(near, (s) => accepts(s) === isNodeId(s)), { numRuns: 3000 })
  t.true(isNodeId('edge-1'))
  t.false(isNodeId('Edge-1'), 'node ids are lower case')
  t.true(CERT_NAME.test('Alice'), 'an operator name may use either case')
  t.false(isNodeId('-a'))
  t.false(isNodeId('a'.repeat(64)))
})

test('vocabulary: roles and ranking keys are the ones the rest of the node uses', (t) => {
  t.deepEqual([...ROLES], [...CERT_ROLES])
  t.deepEqual([...CERT_ROLES], ['ca', ...PEER_ROLES])
  t.deepEqual(defaultHubPolicy.ranking, [...RANK_KEYS], 'the default ranking is every key, in the vocabulary\'s order')
  const ranking = (imageSchema.properties.hubs as { properties: { ranking: { items: { enum: readonly string[] } } } }).properties.ranking.items.enum
  t.deepEqual([...ranking], [...RANK_KEYS])
})
