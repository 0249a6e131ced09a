import test from 'ava'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import { Packr } from 'msgpackr'
import { OriginError, type ErrorCode } from '../../node/errors'
import { boundedError, decodeFrame, encodeFrame, type Frame } from '../../node/transport/frames'
import { errorFrameBounds, transportDefaults } from '../../node/transport/config'

const MAX = 1 << 20
/** Encodes anything, as a sender that does not follow the frame schema would. */
const raw = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })

function code (err: unknown): string | undefined {
  return err instanceof OriginError ? err.code : undefined
}

const examples: Frame[] = [
  { t: 'req', id: 1, m: 'mesh.ping', p: { from: 'n1', table: [1, 2, 3] } },
  { t: 'req', id: 2, m: 'mesh.ping' },
  { t: 'res', id: 3, v: 'pong' },
  { t: 'res', id: 4 },
  { t: 'err', id: 5, e: { code: 'E_NOT_FOUND', message: 'no node n9', data: { node: 'n9' }, caller: 'control.node' } },
  { t: 'err', id: 0, e: { code: 'E_FRAME_INVALID', message: 'bad frame' } },
  { t: 'item', id: 6, v: { line: 'hello', n: 1.5, ok: true, nothing: null } },
  { t: 'end', id: 7 },
  { t: 'cancel', id: 2 ** 32 }
]

test('frames: every frame kind survives encode and decode', (t) => {
  for (const frame of examples) t.deepEqual(decodeFrame(encodeFrame(frame), MAX), frame, frame.t)
})

test('frames: a frame over the bound is refused with E_FRAME_TOO_LARGE', (t) => {
  const bytes = encodeFrame({ t: 'res', id: 1, v: 'x'.repeat(200) })
  t.notThrows(() => decodeFrame(bytes, bytes.length))
  const err = t.throws(() => decodeFrame(bytes, bytes.length - 1))
  t.is(code(err), 'E_FRAME_TOO_LARGE')
  t.like((err as OriginError).data, { size: bytes.length, maxBytes: bytes.length - 1 })
})

test('frames: bytes that are not msgpack are refused with E_FRAME_INVALID', (t) => {
  for (const bytes of [Buffer.alloc(0), Buffer.from([0x92, 0x01]), Buffer.from('garbage!'), Buffer.from([0xd4, 0x01, 0x00])]) {
    const err = t.throws(() => decodeFrame(bytes, MAX))
    t.is(code(err), 'E_FRAME_INVALID', bytes.toString('hex'))
    t.regex(err.message, /not valid msgpack/)
  }
})

/** A valid req frame whose payload is `n` empty maps: n + 1 values in the payload for n + 5 bytes. */
function emptyMapsRequest (method: string, n: number): Buffer {
  const head = encodeFrame({ t: 'req', id: 1, m: method, p: null }).subarray(0, -1) // without the nil payload
  const array = Buffer.alloc(5 + n, 0x80)
  array[0] = 0xdd
  array.writeUInt32BE(n, 1)
  return Buffer.concat([head, array])
}

test('frames: 4 MiB of empty maps is refused before it is decoded, in bounded time and memory', (t) => {
  const max = transportDefaults.maxFrameBytes
  const bytes = emptyMapsRequest('supervisor.report', max - 40)
  t.true(bytes.length <= max, 'within the byte limit')
  const heap = process.memoryUsage().heapUsed
  const started = process.hrtime.bigint()
  const err = t.throws(() => decodeFrame(bytes, max))
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  const grewMb = (process.memoryUsage().heapUsed - heap) / 1e6
  t.is(code(err), 'E_FRAME_TOO_LARGE')
  t.regex(err.message, /more than 524288 values/)
  t.true(ms < 200, `refused in ${ms.toFixed(1)} ms`) // decoding it took 700 ms and 270 MB
  t.true(grewMb < 20, `heap grew ${grewMb.toFixed(1)} MB`)
  // Up to the limit it decodes: the frame map, its 4 keys, 4 values (the last is the array) and the maps.
  const atLimit = emptyMapsRequest('x', transportDefaults.maxFrameElements - 9)
  t.is((decodeFrame(atLimit, max) as { p: unknown[] }).p.length, transportDefaults.maxFrameElements - 9)
  t.is(code(t.throws(() => decodeFrame(emptyMapsRequest('x', transportDefaults.maxFrameElements - 8), max))), 'E_FRAME_TOO_LARGE')
})

test('frames: the element and depth limits can be set per call', (t) => {
  const frame = encodeFrame({ t: 'res', id: 1, v: [[[[1, 2, 3]]]] })
  t.notThrows(() => decodeFrame(frame, MAX, { maxElements: 13, maxDepth: 5 }))
  t.regex(t.throws(() => decodeFrame(frame, MAX, { maxElements: 12, maxDepth: 5 })).message, /more than 12 values/)
  t.regex(t.throws(() => decodeFrame(frame, MAX, { maxElements: 13, maxDepth: 4 })).message, /deeper than 4 levels/)
})

test("frames: msgpackr's structured-clone references, which expand exponentially, are refused", (t) => {
  // 30 levels of [x, x]: 40 bytes that walk as 2^30 leaves once the references are followed.
  const clone = new Packr({ structuredClone: true })
  let v: unknown = 'leaf'
  for (let i = 0; i < 30; i++) v = [v, v]
  const bytes = clone.pack({ t: 'res', id: 1, v })
  t.true(bytes.length < 1000)
  const err = t.throws(() => decodeFrame(bytes, MAX))
  t.is(code(err), 'E_FRAME_INVALID')
  t.regex(err.message, /extension type .* is not accepted/)
})

test('frames: an error is bounded for the wire: code kept, message and caller cut, big data reduced to its small fields', (t) => {
  const huge = boundedError({
    code: 'E_PAYLOAD_INVALID',
    message: 'x'.repeat(5_000_000),
    caller: 'c'.repeat(10_000),
    data: { method: 'mesh.gossip', count: 9000, ok: false, errors: Array.from({ length: 50_000 }, (_, i) => ({ path: `/table/n${i}`, message: 'must be string' })), long: 'y'.repeat(1000) }
  })
  t.is(huge.code, 'E_PAYLOAD_INVALID')
  t.true(huge.message.length <= errorFrameBounds.messageChars + 50)
  t.regex(huge.message, /\.\.\. \(4998000 more characters\)$/)
  t.true((huge.caller ?? '').length <= errorFrameBounds.callerChars + 50)
  const { truncated, ...kept } = huge.data ?? {}
  t.deepEqual(kept, { method: 'mesh.gossip', count: 9000, ok: false }, 'small fields are kept')
  t.like(truncated, { dropped: ['errors', 'long'] })
  t.true((truncated as { bytes: number }).bytes > 1_000_000, 'says how big the data was')
  t.true(encodeFrame({ t: 'err', id: 1, e: huge }).length < 10_000)
  const small = { code: 'E_NOT_FOUND' as const, message: 'no node n9', data: { node: 'n9', tried: [1, 2] }, caller: 'control.node' }
  t.deepEqual(boundedError(small), small, 'a normal error passes unchanged')
})

test('frames: trailing bytes after a valid frame are refused', (t) => {
  const bytes = Buffer.concat([encodeFrame({ t: 'end', id: 1 }), Buffer.from([0x01])])
  t.is(code(t.throws(() => decodeFrame(bytes, MAX))), 'E_FRAME_INVALID')
})

test('frames: msgpack that is not an object is refused with E_FRAME_INVALID', (t) => {
  for (const value of [42, 'res', null, true, [1, 2], [{ t: 'end', id: 1 }]]) {
    const err = t.throws(() => decodeFrame(raw.pack(value), MAX))
    t.is(code(err), 'E_FRAME_INVALID', JSON.stringify(value))
    t.regex(err.message, /must be object/)
  }
})

test('frames: objects that break the frame schema are refused with E_FRAME_INVALID', (t) => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['an unknown t', { t: 'zap', id: 1 }, /tag "t"/],
    ['a t that is not a string', { t: 1, id: 1 }, /tag "t" must be string/],
    ['no t at all', { id: 1, v: 2 }, /missing required field "t"/],
    ['a missing id', { t: 'end' }, /missing required field "id"/],
    ['an extra field', { t: 'end', id: 1, x: 1 }, /unknown field "x"/],
    ['a negative id', { t: 'res', id: -1, v: 1 }, /\/id: must be >= 0/],
    ['a fractional id', { t: 'res', id: 1.5 }, /\/id: must be integer/],
    ['an id over 2^32', { t: 'cancel', id: 2 ** 32 + 1 }, /\/id: must be <=/],
    ['a string id', { t: 'end', id: '1' }, /\/id: must be integer/],
    ['a req without a method', { t: 'req', id: 1 }, /missing required field "m"/],
    ['a req with an empty method', { t: 'req', id: 1, m: '' }, /\/m: must NOT have fewer than 1 characters/],
    ['an err without e', { t: 'err', id: 1 }, /missing required field "e"/],
    ['an err whose e has no code', { t: 'err', id: 1, e: { message: 'x' } }, /missing required field "code"/],
    ['an err whose data is not an object', { t: 'err', id: 1, e: { code: 'E_INTERNAL', message: 'x', data: 3 } }, /\/e\/data: must be object/]
  ]
  for (const [what, value, why] of bad) {
    const err = t.throws(() => decodeFrame(raw.pack(value), MAX), undefined, what)
    t.is(code(err), 'E_FRAME_INVALID', what)
    t.regex(err.message, why, what)
  }
})

// Values msgpack carries unchanged: no -0 (packed as the integer 0), no `__proto__` keys
// (msgpackr renames them, against prototype pollution), no undefined inside containers.
const key = fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__')
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, tie('leaf'), tie('array'), tie('object')),
  leaf: fc.oneof(
    fc.constant(null), fc.boolean(), fc.integer(), fc.maxSafeInteger(),
    fc.double().map((d) => d === 0 ? 0 : d), fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b))
  ),
  array: fc.array(tie('value'), { maxLength: 5 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 5, noNullPrototype: true })
}))

const codes: ErrorCode[] = ['E_ARGS', 'E_FRAME_INVALID', 'E_TIMEOUT', 'E_CLOSED', 'E_NOT_FOUND', 'E_INTERNAL']
const frameId = fc.bigInt({ min: 0n, max: 2n ** 32n }).map(Number)
const opt = { requiredKeys: ['t', 'id'] as Array<'t' | 'id'>, noNullPrototype: true }

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ t: fc.constant('req' as const), id: frameId, m: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 50 }), p: value }, { requiredKeys: ['t', 'id', 'm'], noNullPrototype: true }),
  fc.record({ t: fc.constant('res' as const), id: frameId, v: value }, opt),
  fc.record({
    t: fc.constant('err' as const),
    id: frameId,
    e: fc.record({
      code: fc.constantFrom(...codes),
      message: fc.string({ maxLength: 40 }),
      data: fc.dictionary(key, value, { maxKeys: 4, noNullPrototype: true }),
      caller: fc.string({ maxLength: 20 })
    }, { requiredKeys: ['code', 'message'], noNullPrototype: true })
  }, { noNullPrototype: true }),
  fc.record({ t: fc.constant('item' as const), id: frameId, v: value }, opt),
  fc.record({ t: fc.constant('end' as const), id: frameId }, { noNullPrototype: true }),
  fc.record({ t: fc.constant('cancel' as const), id: frameId }, { noNullPrototype: true })
)

test('frames: decode(encode(f)) equals f for arbitrary valid frames', (t) => {
  fc.assert(fc.property(frameArb, (frame) => {
    assert.deepStrictEqual(decodeFrame(encodeFrame(frame), MAX), frame)
  }), { numRuns: 500 })
  t.pass()
})

const LIMIT = 48
/** Mostly garbage, some of it close to real frames: truncated, extended or with a byte changed. */
const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.tuple(frameArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('truncate', 'flip', 'append')).map(([frame, at, byte, how]) => {
    const bytes = Buffer.from(encodeFrame(frame))
    const i = at % Math.max(bytes.length, 1)
    if (how === 'truncate') return bytes.subarray(0, i)
    if (how === 'append') return Buffer.concat([bytes, Buffer.from([byte])])
    bytes[i] = byte
    return bytes
  }),
  fc.anything({ maxDepth: 2 }).map((v) => raw.pack(v))
)

test('frames: arbitrary bytes decode to a valid frame or fail with a frame error, never anything else', (t) => {
  const seen = new Set<string>()
  fc.assert(fc.property(bytesArb, (bytes) => {
    let frame: Frame
    try {
      frame = decodeFrame(bytes, LIMIT)
    } catch (err) {
      assert.ok(err instanceof OriginError, `threw ${String(err)}`)
      assert.ok(err.code === 'E_FRAME_INVALID' || err.code === 'E_FRAME_TOO_LARGE', `threw ${err.code}: ${err.message}`)
      if (err.code === 'E_FRAME_TOO_LARGE') assert.ok(bytes.length > LIMIT)
      seen.add(err.code)
      return
    }
    seen.add('frame')
    assert.ok(bytes.length <= LIMIT)
    assert.ok(['req', 'res', 'err', 'item', 'end', 'cancel'].includes(frame.t))
    assert.ok(Number.isInteger(frame.id) && frame.id >= 0 && frame.id <= 2 ** 32)
    // A decoded frame is one we could send on: it encodes to a frame that decodes again.
    assert.doesNotThrow(() => decodeFrame(encodeFrame(frame), MAX))
  }), { numRuns: 2000 })
  t.deepEqual([...seen].sort(), ['E_FRAME_INVALID', 'E_FRAME_TOO_LARGE', 'frame'], 'every outcome was exercised')
})
