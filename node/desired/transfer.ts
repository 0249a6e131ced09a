/**
 * A commit's git objects sent between nodes in frames of bounded size: objects are batched,
 * and one larger than a piece is split, so a commit with a file of any size (up to the
 * commit limit) crosses the frame bound. The receiver puts pieces back together and checks
 * their order and sizes; every object id is then recomputed by the store, as before.
 */
import { OriginError } from '../errors'
import type { GitObject } from '../git/store'

/** One object, or `size` bytes of it from `at` (an object in several pieces has `size` > data). */
export interface ObjectPiece extends GitObject { at: number, size: number }

/** Bytes of object data per frame: well under the transport's 4 MiB frame bound. */
export const PIECE_BYTES = 1 << 20

export function * objectPieces (objects: Iterable<GitObject>, pieceBytes = PIECE_BYTES): Iterable<ObjectPiece[]> {
  let batch: ObjectPiece[] = []
  let size = 0
  for (const o of objects) {
    for (let at = 0; at < Math.max(o.data.length, 1); at += pieceBytes) {
      const data = o.data.subarray(at, at + pieceBytes)
      batch.push({ oid: o.oid, type: o.type, data, at, size: o.data.length })
      size += data.length
      if (size >= pieceBytes) { yield batch; batch = []; size = 0 }
    }
  }
  if (batch.length > 0) yield batch
}

/** Collects pieces into whole objects; refuses pieces out of order, of another size, or past `maxBytes` in all. */
export class ObjectAssembler {
  private readonly done: GitObject[] = []
  private open?: { oid: string, type: GitObject['type'], parts: Buffer[], got: number, size: number }
  private total = 0

  constructor (private readonly maxBytes: number) {}

  add (p: ObjectPiece): void {
    const bad = (why: string): OriginError => new OriginError('E_SPEC_INVALID', `received object ${p.oid}: ${why}`, { oid: p.oid })
    if (!Number.isSafeInteger(p.at) || !Number.isSafeInteger(p.size) || p.at < 0 || p.size < 0) throw bad('bad piece offsets')
    this.total += p.data.length
    if (this.total > this.maxBytes) throw new OriginError('E_SPEC_INVALID', `received objects add up to more than ${this.maxBytes} bytes (maxCommitMb)`)
    if (p.at === 0) {
      if (this.open !== undefined) throw bad(`starts before ${this.open.oid} is complete`)
      if (p.size > this.maxBytes) throw bad(`${p.size} bytes is over the commit limit`)
      this.open = { oid: p.oid, type: p.type, parts: [], got: 0, size: p.size }
    } else if (this.open === undefined || this.open.oid !== p.oid || this.open.got !== p.at || this.open.size !== p.size) {
      throw bad('a piece out of order')
    }
    const o = this.open
    o.parts.push(Buffer.from(p.data))
    o.got += p.data.length
    if (o.got > o.size) throw bad('more data than its size')
    if (o.got === o.size) {
      this.done.push({ oid: o.oid, type: o.type, data: Buffer.concat(o.parts) })
      this.open = undefined
    }
  }

  objects (): GitObject[] {
    if (this.open !== undefined) throw new OriginError('E_SPEC_INVALID', `received object ${this.open.oid} is incomplete (${this.open.got} of ${this.open.size} bytes)`)
    return this.done
  }
}
