import test from 'ava'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import { Packr } from 'msgpackr'
import { OriginError } from '../../node/errors'
import { scanMsgpack } from '../../node/transport/scan'

const plain = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })
const roomy = { maxElements: 1e9, maxDepth: 1e6 }

function code (f: () => unknown): string | undefined {
  try { f() } catch (err) { return err instanceof OriginError ? err.code : `not an OriginError: ${String(err)}` }
  return undefined
}

/** Values as msgpack counts them: each map, array, key and scalar is one. */
function count (v: unknown): number {
  if (Array.isArray(v)) return 1 + v.reduce((n: number, x) => n + count(x), 0)
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && !(v instanceof Date)) {
    return 1 + Object.values(v).reduce((n: number, x) => n + 1 + count(x), 0)
  }
  return 1
}

/** An array32 of `n` empty maps: n + 1 values in n + 5 bytes. */
function emptyMaps (n: number): Buffer {
  const b = Buffer.alloc(5 + n, 0x80)
  b[0] = 0xdd
  b.writeUInt32BE(n, 1)
  return b
}

function nested (depth: number): Buffer {
  return Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])])
}

test('scan: counts every value of what our encoder writes, the same as the decoded value holds', (t) => {
  const key = fc.string({ maxLength: 6 }).filter((k) => k !== '__proto__')
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, tie('leaf'), tie('array'), tie('object')),
    leaf: fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), fc.date({ noInvalidDate: true })),
    array: fc.array(tie('v'), { maxLength: 20 }),
    object: fc.dictionary(key, tie('v'), { maxKeys: 20, noNullPrototype: true })
  })).v
  fc.assert(fc.property(value, (v) => {
    assert.equal(scanMsgpack(plain.pack(v), roomy).elements, count(v))
  }), { numRuns: 1000 })
  t.pass()
})

test('scan: stops at the element limit, before reading the rest', (t) => {
  const bytes = emptyMaps(4_190_000)
  const started = process.hrtime.bigint()
  const err = t.throws(() => scanMsgpack(bytes, { maxElements: 1000, maxDepth: 64 }))
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  t.is((err as OriginError).code, 'E_FRAME_TOO_LARGE')
  t.regex(err.message, /more than 1000 values/)
  t.true(ms < 50, `took ${ms} ms`)
  t.is(scanMsgpack(emptyMaps(999), { maxElements: 1000, maxDepth: 64 }).elements, 1000, 'exactly at the limit is fine')
  t.is(code(() => scanMsgpack(emptyMaps(1000), { maxElements: 1000, maxDepth: 64 })), 'E_FRAME_TOO_LARGE')
})

test('scan: nesting deeper than the limit is refused, iteratively (no stack overflow at a million levels)', (t) => {
  t.is(scanMsgpack(nested(64), { maxElements: 1e6, maxDepth: 64 }).depth, 64)
  t.is(code(() => scanMsgpack(nested(65), { maxElements: 1e6, maxDepth: 64 })), 'E_FRAME_TOO_LARGE')
  t.regex(t.throws(() => scanMsgpack(nested(1_000_000), { maxElements: 1e9, maxDepth: 64 })).message, /deeper than 64 levels/)
  t.is(scanMsgpack(nested(1_000_000), roomy).depth, 1_000_000)
})

test('scan: malformed msgpack is refused with E_FRAME_INVALID saying what is wrong', (t) => {
  const cases: Array<[string, number[], RegExp]> = [
    ['nothing', [], /truncated at byte 0/],
    ['the unused byte 0xc1', [0xc1], /0xc1 .* is not a msgpack type/],
    ['an array cut short', [0x92, 0x01], /a container claims 2 values with 1 bytes left/],
    ['a string cut short', [0xa5, 0x61], /truncated/],
    ['a str32 claiming 4 GB', [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61], /truncated/],
    ['an array32 claiming 4 G values', [0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0], /claims 4294967295 values/],
    ['a map32 claiming 4 G entries', [0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0], /claims 8589934590 values/],
    ['trailing bytes', [0xc0, 0xc0], /1 bytes after the value/],
    ['a float cut short', [0xcb, 0, 0, 0], /truncated/]
  ]
  for (const [what, bytes, why] of cases) {
    const err = t.throws(() => scanMsgpack(Buffer.from(bytes), roomy), undefined, what)
    t.is((err as OriginError).code, 'E_FRAME_INVALID', what)
    t.regex(err.message, /^frame is not valid msgpack: /, what)
    t.regex(err.message, why, what)
  }
})

test("scan: only undefined and timestamps pass among extensions; msgpackr's own (records, references, sets, errors, bigints, regexps) are refused", (t) => {
  t.is(scanMsgpack(plain.pack([undefined, new Date(0), new Date(8e15), new Date(1.5)]), roomy).elements, 5)
  const rich = new Packr({ moreTypes: true, structuredClone: true, useRecords: true })
  const shared = { a: [1, 2, 3] }
  const refused: Array<[string, Buffer]> = [
    ['a record', rich.pack([{ x: 1, y: 2 }, { x: 3, y: 4 }])],
    ['a structured-clone reference', rich.pack([shared, shared])],
    ['a set', rich.pack(new Set([1]))],
    ['an error', rich.pack(new Error('e'))],
    ['a regexp', rich.pack(/x/)],
    ['a big bigint', new Packr({ useBigIntExtension: true } as never).pack(2n ** 100n)],
    ['an unknown fixext', Buffer.from([0xd4, 0x01, 0x00])],
    ['a timestamp of the wrong length', Buffer.from([0xd5, 0xff, 0x00, 0x00])]
  ]
  for (const [what, bytes] of refused) {
    const err = t.throws(() => scanMsgpack(bytes, roomy), undefined, what)
    t.is((err as OriginError).code, 'E_FRAME_INVALID', what)
    t.regex(err.message, /extension type -?\d+ .* is not accepted/, what)
  }
})
