import test from 'ava'
import fc from 'fast-check'
import { ObjectAssembler, objectPieces } from '../../node/desired/transfer'
import type { GitObject } from '../../node/git/store'

const blob = (oid: string, size: number): GitObject => ({ oid, type: 'blob', data: Buffer.alloc(size, oid.charCodeAt(0)) })

test('spec transfer: objects of any size cross in pieces of at most one piece size, and come back whole', (t) => {
  t.notThrows(() => fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 8 }), fc.integer({ min: 1, max: 1500 }), (sizes, pieceBytes) => {
    const objects = sizes.map((n, i) => blob(String.fromCharCode(97 + i), n))
    const a = new ObjectAssembler(1e9)
    for (const batch of objectPieces(objects, pieceBytes)) {
      if (batch.reduce((n, p) => n + p.data.length, 0) > 2 * pieceBytes) return false
      for (const p of batch) a.add(p)
    }
    const back = a.objects()
    return back.length === objects.length && back.every((o, i) => o.oid === objects[i].oid && Buffer.compare(Buffer.from(o.data), Buffer.from(objects[i].data)) === 0)
  })))
})

test('spec transfer: pieces out of order, an incomplete object, or more than the limit are refused', (t) => {
  const pieces = [...objectPieces([blob('a', 10)], 4)].flat()
  const a = new ObjectAssembler(100)
  a.add(pieces[0])
  t.throws(() => a.add(pieces[2]), { message: /out of order/ })
  const b = new ObjectAssembler(100)
  b.add(pieces[0])
  t.throws(() => b.objects(), { message: /incomplete \(4 of 10 bytes\)/ })
  const c = new ObjectAssembler(8)
  t.throws(() => c.add(pieces[0]), { message: /over the commit limit/ })
})
