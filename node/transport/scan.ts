/**
 * A pre-scan of msgpack bytes: walks the headers without building anything, and refuses a
 * frame before the decoder spends time and memory on it. msgpackr has no limits of its
 * own, and decoding costs per value, not per byte: 4 MiB of empty maps is 4.2 M objects.
 *
 * The scan checks that the bytes are exactly one well-formed msgpack value, counts every
 * value (maps, arrays, keys, scalars) against `maxElements`, tracks nesting against
 * `maxDepth`, and accepts only the extension types our encoder emits: 0 (undefined) and
 * -1 (timestamp). msgpackr would otherwise also honour its own extensions from a peer:
 * records (0x72, which define structures in the shared decoder), structured-clone
 * references (0x69/0x70, a DAG that expands exponentially once walked), sets, errors,
 * regexps, bigints, typed arrays and bundled strings. Iterative, so hostile nesting cannot
 * overflow the stack; it stops as soon as a limit is crossed.
 */
import { OriginError } from '../errors'

export interface ScanLimits {
  /** Most values, every map, array, key and scalar counting one. */
  maxElements: number
  /** Deepest nesting of maps and arrays; the outermost container is level 1. */
  maxDepth: number
}

export interface ScanResult { elements: number, depth: number }

const TIMESTAMP = 0xff // ext type -1

function invalid (why: string): OriginError {
  return new OriginError('E_FRAME_INVALID', `frame is not valid msgpack: ${why}`)
}

/** Throws E_FRAME_INVALID (malformed) or E_FRAME_TOO_LARGE (over a limit); else what it counted. */
export function scanMsgpack (bytes: Uint8Array, limits: ScanLimits): ScanResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const end = bytes.length
  const open: number[] = [] // values still to read in each enclosing container
  let left = 1 // values still to read at the current level (one at the top)
  let pos = 0
  let elements = 0
  let deepest = 0

  const need = (n: number): void => { if (pos + n > end) throw invalid(`truncated at byte ${pos} of ${end}`) }
  const u8 = (): number => { need(1); return bytes[pos++] }
  const u16 = (): number => { need(2); const v = view.getUint16(pos); pos += 2; return v }
  const u32 = (): number => { need(4); const v = view.getUint32(pos); pos += 4; return v }
  const skip = (n: number): void => { need(n); pos += n }
  const ext = (length: number): void => {
    const type = u8()
    if (!(type === 0 || (type === TIMESTAMP && (length === 4 || length === 8 || length === 12)))) {
      throw invalid(`extension type ${type > 127 ? type - 256 : type} (${length} bytes) is not accepted`)
    }
    skip(length)
  }
  const container = (values: number): void => {
    if (values === 0) return
    // Every value takes at least a byte: a count the rest cannot hold is a lie, refused before it is believed.
    if (values > end - pos) throw invalid(`a container claims ${values} values with ${end - pos} bytes left`)
    open.push(left)
    left = values
    if (open.length > deepest) {
      deepest = open.length
      if (deepest > limits.maxDepth) {
        throw new OriginError('E_FRAME_TOO_LARGE', `frame nests deeper than ${limits.maxDepth} levels`, { maxDepth: limits.maxDepth })
      }
    }
  }

  for (;;) {
    while (left === 0) {
      const up = open.pop()
      if (up === undefined) {
        if (pos !== end) throw invalid(`${end - pos} bytes after the value`)
        return { elements, depth: deepest }
      }
      left = up
    }
    left--
    if (++elements > limits.maxElements) {
      throw new OriginError('E_FRAME_TOO_LARGE', `frame holds more than ${limits.maxElements} values`, { maxElements: limits.maxElements })
    }
    const b = u8()
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue // fixint, nil, bool
    if (b <= 0x8f) { container(2 * (b & 0x0f)); continue } // fixmap
    if (b <= 0x9f) { container(b & 0x0f); continue } // fixarray
    if (b <= 0xbf) { skip(b & 0x1f); continue } // fixstr
    switch (b) {
      case 0xc4: case 0xd9: skip(u8()); break // bin8, str8
      case 0xc5: case 0xda: skip(u16()); break // bin16, str16
      case 0xc6: case 0xdb: skip(u32()); break // bin32, str32
      case 0xc7: ext(u8()); break
      case 0xc8: ext(u16()); break
      case 0xc9: ext(u32()); break
      case 0xcc: case 0xd0: skip(1); break
      case 0xcd: case 0xd1: skip(2); break
      case 0xca: case 0xce: case 0xd2: skip(4); break
      case 0xcb: case 0xcf: case 0xd3: skip(8); break
      case 0xd4: ext(1); break
      case 0xd5: ext(2); break
      case 0xd6: ext(4); break
      case 0xd7: ext(8); break
      case 0xd8: ext(16); break
      case 0xdc: container(u16()); break
      case 0xdd: container(u32()); break
      case 0xde: container(2 * u16()); break
      case 0xdf: container(2 * u32()); break
      default: throw invalid(`byte 0x${b.toString(16)} at ${pos - 1} is not a msgpack type`) // 0xc1
    }
  }
}
