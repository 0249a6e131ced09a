/**
 * The wire format: every websocket message is one msgpack-encoded frame, bounded in size
 * and validated against the frame schema before anything acts on it.
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

/** Bytes from the wire -> a valid frame, or E_FRAME_TOO_LARGE / E_FRAME_INVALID saying why. */
export function decodeFrame (bytes: Buffer, maxBytes: number): Frame {
  if (bytes.length > maxBytes) {
    throw new OriginError('E_FRAME_TOO_LARGE', `frame of ${bytes.length} bytes is over the ${maxBytes} byte limit`, { size: bytes.length, maxBytes })
  }
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch (err) {
    throw new OriginError('E_FRAME_INVALID', `frame is not valid msgpack: ${(err as Error).message}`)
  }
  return checkFrame(value)
}
