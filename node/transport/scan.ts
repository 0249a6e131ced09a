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

/**
 * Throws E_FRAME_INVALID (malformed) or E_FRAME_TOO_LARGE (over a limit); else what it counted.
 * One loop over locals, no closures or views made per call: every frame received passes
 * here, and an RPC answer of a few dozen bytes should cost tens of nanoseconds, not the
 * microsecond that allocating helpers per scan took.
 */
export function scanMsgpack (bytes: Uint8Array, limits: ScanLimits): ScanResult {
  const end = bytes.length
  const { maxElements, maxDepth } = limits
  let open: number[] | undefined // values still to read in each enclosing container
  let depth = 0
  let left = 1 // values still to read at the current level (one at the top)
  let pos = 0
  let elements = 0
  let deepest = 0

  for (;;) {
    while (left === 0) {
      if (depth === 0) {
        if (pos !== end) throw invalid(`${end - pos} bytes after the value`)
        return { elements, depth: deepest }
      }
      left = (open as number[])[--depth]
    }
    left--
    if (++elements > maxElements) {
      throw new OriginError('E_FRAME_TOO_LARGE', `frame holds more than ${maxElements} values`, { maxElements })
    }
    if (pos >= end) throw truncated(pos, end)
    const b = bytes[pos++]
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue // fixint, nil, bool
    let values = 0 // a container's values; else the bytes to skip
    let container = false
    if (b <= 0x8f) { values = 2 * (b & 0x0f); container = true } // fixmap
    else if (b <= 0x9f) { values = b & 0x0f; container = true } // fixarray
    else if (b <= 0xbf) values = b & 0x1f // fixstr
    else {
      // Header: how many length bytes follow, then what the length counts.
      let lengthBytes = 0
      let fixed = -1 // bytes of a fixed-size value
      let ext = false
      switch (b) {
        case 0xc4: case 0xd9: lengthBytes = 1; break // bin8, str8
        case 0xc5: case 0xda: lengthBytes = 2; break // bin16, str16
        case 0xc6: case 0xdb: lengthBytes = 4; break // bin32, str32
        case 0xc7: lengthBytes = 1; ext = true; break
        case 0xc8: lengthBytes = 2; ext = true; break
        case 0xc9: lengthBytes = 4; ext = true; break
        case 0xcc: case 0xd0: fixed = 1; break
        case 0xcd: case 0xd1: fixed = 2; break
        case 0xca: case 0xce: case 0xd2: fixed = 4; break
        case 0xcb: case 0xcf: case 0xd3: fixed = 8; break
        case 0xd4: fixed = 1; ext = true; break
        case 0xd5: fixed = 2; ext = true; break
        case 0xd6: fixed = 4; ext = true; break
        case 0xd7: fixed = 8; ext = true; break
        case 0xd8: fixed = 16; ext = true; break
        case 0xdc: lengthBytes = 2; container = true; break
        case 0xdd: lengthBytes = 4; container = true; break
        case 0xde: lengthBytes = 2; container = true; break
        case 0xdf: lengthBytes = 4; container = true; break
        default: throw invalid(`byte 0x${b.toString(16)} at ${pos - 1} is not a msgpack type`) // 0xc1
      }
      if (fixed >= 0) values = fixed
      else {
        if (pos + lengthBytes > end) throw truncated(pos, end)
        values = lengthBytes === 1
          ? bytes[pos]
          : lengthBytes === 2
            ? (bytes[pos] << 8) | bytes[pos + 1]
            : bytes[pos] * 0x1000000 + ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3])
        pos += lengthBytes
        if (b === 0xde || b === 0xdf) values *= 2
      }
      if (ext) {
        if (pos >= end) throw truncated(pos, end)
        const type = bytes[pos++]
        if (!(type === 0 || (type === TIMESTAMP && (values === 4 || values === 8 || values === 12)))) {
          throw invalid(`extension type ${type > 127 ? type - 256 : type} (${values} bytes) is not accepted`)
        }
      }
    }
    if (!container) {
      if (pos + values > end) throw truncated(pos, end)
      pos += values
      continue
    }
    if (values === 0) continue
    // Every value takes at least a byte: a count the rest cannot hold is a lie, refused before it is believed.
    if (values > end - pos) throw invalid(`a container claims ${values} values with ${end - pos} bytes left`)
    if (open === undefined) open = []
    open[depth++] = left
    left = values
    if (depth > deepest) {
      deepest = depth
      if (deepest > maxDepth) {
        throw new OriginError('E_FRAME_TOO_LARGE', `frame nests deeper than ${maxDepth} levels`, { maxDepth })
      }
    }
  }
}

function truncated (pos: number, end: number): OriginError {
  return invalid(`truncated at byte ${pos} of ${end}`)
}
