import test from 'ava'
import fc from 'fast-check'
import { isoTime } from '../../node/clock'

test('isoTime is toISOString for any time a Date holds, expanded years included', (t) => {
  fc.assert(fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => isoTime(ms) === new Date(ms).toISOString()), { numRuns: 5000 })
  for (const ms of [0, -1, 1, 253402300799999, 253402300800000, -62167219200000, -62167219200001, 8.64e15, -8.64e15, Date.now()]) t.is(isoTime(ms), new Date(ms).toISOString(), String(ms))
})

test('isoTime refuses what toISOString refuses', (t) => {
  for (const ms of [NaN, 8.64e15 + 1, Infinity]) t.throws(() => isoTime(ms), { instanceOf: RangeError })
})
