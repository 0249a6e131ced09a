/**
 * The wire format: every websocket message is one msgpack-encoded frame, bounded in bytes,
 * scanned for its number of values and nesting before it is decoded (scan.ts), and
 * validated against the frame schema before anything acts on it. Error frames we send are
 * bounded too (`boundedError`).
 *
 *   req   { t: 'req', id, m: method, p: payload }      caller -> callee
 *   res   { t: 'res', id, v: value }                    the answer
 *   err   { t: 'err', id, e: { code, message, data } }  a failed call (id 0: the connection itself)
 *   item  { t: 'item', id, v }                          one element of a server-to-client stream
 *   end   { t: 'end', id }                              the stream is complete
 *   cancel{ t: 'cancel', id }                           the caller no longer wants the stream
 */
import { Packr } from 'msgpackr'
import { OriginError, type OriginErrorJSON } from '../errors'
import { validator } from '../validate'
import { errorFrameBounds, transportDefaults } from './config'
import { scanMsgpack, type ScanLimits } from './scan'

export type Frame =
  | { t: 'req', id: number, m: string, p?: unknown }
  | { t: 'res', id: number, v?: unknown }
  | { t: 'err', id: number, e: OriginErrorJSON }
  | { t: 'item', id: number, v?: unknown }
  | { t: 'end', id: number }
  | { t: 'cancel', id: number }

const id = { type: 'integer', minimum: 0, maximum: 2 ** 32 }
// `discriminator` makes ajv check only the branch named by `t`, and say so when `t` is unknown.
const frameSchema = {
  type: 'object',
  required: ['t'],
  properties: { t: { type: 'string' } },
  discriminator: { propertyName: 't' },
  oneOf: [
    { type: 'object', required: ['t', 'id', 'm'], additionalProperties: false, properties: { t: { type: 'string', const: 'req' }, id, m: { type: 'string', minLength: 1, maxLength: 200 }, p: {} } },
    { type: 'object', required: ['t', 'id'], additionalProperties: false, properties: { t: { type: 'string', const: 'res' }, id, v: {} } },
    {
      type: 'object',
      required: ['t', 'id', 'e'],
      additionalProperties: false,
      properties: {
        t: { type: 'string', const: 'err' },
        id,
        e: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, data: { type: 'object' }, caller: { type: 'string' } } }
      }
    },
    { type: 'object', required: ['t', 'id'], additionalProperties: false, properties: { t: { type: 'string', const: 'item' }, id, v: {} } },
    { type: 'object', required: ['t', 'id'], additionalProperties: false, properties: { t: { type: 'string', const: 'end' }, id } },
    { type: 'object', required: ['t', 'id'], additionalProperties: false, properties: { t: { type: 'string', const: 'cancel' }, id } }
  ]
}
const checkFrame = validator<Frame>(frameSchema, 'frame', 'E_FRAME_INVALID')

// Plain maps and no records: frames come from other processes, possibly other versions.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })

export function encodeFrame (frame: Frame): Buffer {
  return packr.pack(frame)
}

const defaultScan: ScanLimits = { maxElements: transportDefaults.maxFrameElements, maxDepth: transportDefaults.maxFrameDepth }

/**
 * Bytes from the wire -> a valid frame, or E_FRAME_TOO_LARGE (over `maxBytes`, or more
 * values or nesting than `limits` allow) / E_FRAME_INVALID saying why. The bytes are
 * scanned before they are decoded, so a refused frame costs at most a pass over its headers.
 */
export function decodeFrame (bytes: Buffer, maxBytes: number, limits: ScanLimits = defaultScan): Frame {
  if (bytes.length > maxBytes) {
    throw new OriginError('E_FRAME_TOO_LARGE', `frame of ${bytes.length} bytes is over the ${maxBytes} byte limit`, { size: bytes.length, maxBytes })
  }
  scanMsgpack(bytes, limits)
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch (err) {
    throw new OriginError('E_FRAME_INVALID', `frame is not valid msgpack: ${(err as Error).message}`)
  }
  return checkFrame(value)
}

/** `s` cut to `max` characters, saying how much was cut. */
export function clip (s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}... (${s.length - max} more characters)`
}

/**
 * An error as it may go on the wire: code kept, message and caller clipped, and data that
 * encodes over `errorFrameBounds.dataBytes` replaced by its small scalar fields plus a note
 * of what was dropped. Whatever a handler throws, the error frame stays a few kB.
 */
export function boundedError (e: OriginErrorJSON): OriginErrorJSON {
  const out: OriginErrorJSON = { code: e.code, message: clip(String(e.message), errorFrameBounds.messageChars) }
  if (e.caller !== undefined) out.caller = clip(String(e.caller), errorFrameBounds.callerChars)
  if (e.data === undefined) return out
  let size: number
  try { size = packr.pack(e.data).length } catch { size = Infinity }
  if (size <= errorFrameBounds.dataBytes) { out.data = e.data; return out }
  const kept: Record<string, unknown> = {}
  const dropped: string[] = []
  for (const [k, v] of Object.entries(e.data).slice(0, 50)) {
    const small = v === null || typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= 200)
    if (small && k.length <= 100) kept[k] = v
    else dropped.push(clip(k, 100))
  }
  out.data = { ...kept, truncated: { bytes: size === Infinity ? null : size, dropped } }
  return out
}