/**
 * What other nodes send the membership layer, checked in two steps:
 *
 * 1. `gossipPayload(maxMembers)` is the method's payload schema, checked by the transport:
 *    shape and sizes only (a `from` id, a table of at most `maxMembers` entries), so that a
 *    frame too large is refused with one short error, not one error per member.
 * 2. `checkFrame` checks every entry (bounds on every number and string), that each entry
 *    is keyed by its own id, and that the sender is in its own table. It stops at the first
 *    problem, so its error is short whatever the frame holds. It also checks answers,
 *    which no transport schema covers.
 *
 * The SWIM messages (mesh.ping, mesh.ping-req and their answers) are small, at most
 * `maxDeltas` changes each, so the transport checks them whole (`pingPayload`,
 * `pingReqPayload`) and `checkAck` / `checkPingReqAnswer` check the answers the same way.
 */
import { OriginError } from '../errors'
import { schemaCheck } from '../validate'
import type { ValidateFunction } from 'ajv'
import { membershipDefaults } from './config'
import type { Delta } from './broadcasts'
import { UNHEALTHY_MAX_CHARS, type Member, type MemberTable } from './types'
import { nodeIdSchema } from '../vocabulary'

const SAFE = Number.MAX_SAFE_INTEGER

export const idSchema = nodeIdSchema

export const memberSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'address', 'incarnation', 'heartbeat', 'status', 'characteristics', 'hub'],
  properties: {
    id: idSchema,
    address: { type: 'string', minLength: 3, maxLength: 300, pattern: '^\\S+:[0-9]{1,5}$' },
    incarnation: { type: 'integer', minimum: 0, maximum: SAFE },
    heartbeat: { type: 'integer', minimum: 0, maximum: SAFE },
    status: { enum: ['alive', 'suspect', 'dead', 'left'] },
    hub: { type: 'boolean' },
    spec: { type: 'string', maxLength: 100 },
    instances: {
      type: 'object',
      maxProperties: 1000,
      propertyNames: { maxLength: 200 },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['version', 'state'],
        properties: {
          version: { type: 'string', maxLength: 100 },
          state: { type: 'string', maxLength: 20 },
          generation: { type: 'integer', minimum: 0, maximum: SAFE },
          address: { type: 'string', maxLength: 300 },
          ports: { type: 'object', maxProperties: 32, propertyNames: { maxLength: 32 }, additionalProperties: { type: 'integer', minimum: 1, maximum: 65535 } }
        }
      }
    },
    characteristics: {
      type: 'object',
      additionalProperties: false,
      required: ['cpus', 'memoryMb', 'arch', 'labels', 'startedAt'],
      properties: {
        cpus: { type: 'integer', minimum: 1, maximum: 1 << 16 },
        memoryMb: { type: 'number', minimum: 0, maximum: 1 << 30 },
        arch: { type: 'string', maxLength: 32 },
        labels: { type: 'object', maxProperties: 64, propertyNames: { maxLength: 128 }, additionalProperties: { type: 'string', maxLength: 256 } },
        startedAt: { type: 'integer', minimum: 0, maximum: SAFE },
        secrets: { type: 'array', items: { type: 'string', maxLength: 128 }, maxItems: 1000 },
        containment: { enum: ['pid-namespace', 'process-group'] },
        runtimes: { type: 'array', items: { enum: ['process', 'docker'] }, maxItems: 8 },
        drained: { type: 'boolean' },
        unhealthy: { type: 'string', minLength: 1, maxLength: UNHEALTHY_MAX_CHARS },
        certificate: {
          type: 'object',
          additionalProperties: false,
          required: ['serial', 'notAfter'],
          properties: { serial: { type: 'string', maxLength: 128 }, notAfter: { type: 'integer', minimum: 0 } }
        }
      }
    }
  }
}

/** A gossip frame (mesh.join, mesh.gossip, and their answers): the sender's id and its table. */
export interface GossipFrame { from: string, table: MemberTable }

/** The payload schema the transport checks for mesh.join and mesh.gossip: shape and sizes. */
export function gossipPayload (maxMembers: number): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'table'],
    properties: { from: idSchema, table: { type: 'object', maxProperties: maxMembers } }
  }
}

function frameSchema (maxMembers: number): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'table'],
    properties: {
      from: idSchema,
      table: { type: 'object', maxProperties: maxMembers, propertyNames: idSchema, additionalProperties: memberSchema }
    }
  }
}

/** mesh.ping: probe `to` (its id: another member answering at its address is not it), with changes piggybacked. */
export interface Ping {
  from: string
  to: string
  /** The version of `to`'s entry the prober holds; absent or older, and the ack carries `to`'s own entry. */
  have?: { incarnation: number, heartbeat: number }
  /** Entries in the prober's table: a receiver holding fewer has missed news, and asks for the whole table. */
  n?: number
  deltas: Delta[]
}
/**
 * The answer to mesh.ping: changes piggybacked, the member's own entry when the prober's
 * is older, and `stranger` when the prober is not in the member's table (so the prober
 * says who it is).
 */
export interface Ack { from: string, deltas: Delta[], self?: Member, stranger?: boolean, n?: number }
/** mesh.ping-req: probe `target` for the sender (SWIM's indirect probe). */
export interface PingReq { from: string, target: { id: string, address: string }, deltas: Delta[] }
/** The answer to mesh.ping-req: whether `target` acked (false is Lifeguard's nack). */
export interface PingReqAnswer { from: string, acked: boolean, deltas: Delta[] }

const addressSchema = { type: 'string', minLength: 3, maxLength: 300, pattern: '^\\S+:[0-9]{1,5}$' }
const versionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['incarnation', 'heartbeat'],
  properties: { incarnation: { type: 'integer', minimum: 0, maximum: SAFE }, heartbeat: { type: 'integer', minimum: 0, maximum: SAFE } }
}

function deltasSchema (maxDeltas: number): object {
  return {
    type: 'array',
    maxItems: maxDeltas,
    items: { type: 'object', additionalProperties: false, required: ['e'], properties: { e: memberSchema, by: idSchema } }
  }
}

/** The payload schema of mesh.ping, checked whole by the transport. */
export function pingPayload (maxDeltas: number): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'to', 'deltas'],
    properties: { from: idSchema, to: idSchema, have: versionSchema, n: { type: 'integer', minimum: 0, maximum: SAFE }, deltas: deltasSchema(maxDeltas) }
  }
}

/** The payload schema of mesh.ping-req, checked whole by the transport. */
export function pingReqPayload (maxDeltas: number): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'target', 'deltas'],
    properties: {
      from: idSchema,
      target: { type: 'object', additionalProperties: false, required: ['id', 'address'], properties: { id: idSchema, address: addressSchema } },
      deltas: deltasSchema(maxDeltas)
    }
  }
}

function ackSchema (maxDeltas: number): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'deltas'],
    properties: { from: idSchema, deltas: deltasSchema(maxDeltas), self: memberSchema, stranger: { type: 'boolean' }, n: { type: 'integer', minimum: 0, maximum: SAFE } }
  }
}

function pingReqAnswerSchema (maxDeltas: number): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'acked', 'deltas'],
    properties: { from: idSchema, acked: { type: 'boolean' }, deltas: deltasSchema(maxDeltas) }
  }
}

/** Longest error message `checkFrame` makes: what goes back to the sender stays small. */
export const MAX_ERROR_CHARS = 400

type Kind = 'frame' | 'ack' | 'ping-req answer'
const checkers = new Map<string, () => ValidateFunction>()

/**
 * The check of `kind` for a bound of `limit` (members or deltas), declared once per pair.
 * Not the mode that collects every error: a frame of thousands of bad entries would make an
 * error of megabytes.
 */
function checkerFor (kind: Kind, schema: (limit: number) => object, limit: number): () => ValidateFunction {
  const key = `${kind}:${limit}`
  let checker = checkers.get(key)
  if (checker === undefined) {
    checker = schemaCheck(schema(limit), 'first')
    checkers.set(key, checker)
  }
  return checker
}

/** `value` as `kind` for a bound of `limit`, or an `E_PAYLOAD_INVALID` naming its first problem. */
function checkWith<T> (kind: Kind, schema: (limit: number) => object, value: unknown, what: string, limit: number): T {
  const check = checkerFor(kind, schema, limit)()
  if (!check(value)) {
    const e = check.errors?.[0]
    const at = e === undefined || e.instancePath === '' ? '(root)' : e.instancePath
    const extra = e?.keyword === 'additionalProperties' ? ` "${String(e.params.additionalProperty)}"` : ''
    throw invalid(what, `${at}: ${e?.message ?? 'is invalid'}${extra}`, at)
  }
  return value as T
}

/**
 * `value` as a gossip frame, or an `E_PAYLOAD_INVALID` naming the first problem only.
 * `what` says what was checked (`payload of mesh.gossip`, `answer from 10.0.0.4:7400`).
 */
export function checkFrame (value: unknown, what: string, maxMembers: number): GossipFrame {
  const frame = checkWith<GossipFrame>('frame', frameSchema, value, what, maxMembers)
  for (const key of Object.keys(frame.table)) {
    const id = frame.table[key].id
    if (id !== key) throw invalid(what, `/table/${key}: the entry is keyed "${key}" but is member "${id}"`, `/table/${key}`)
  }
  if (!Object.hasOwn(frame.table, frame.from)) throw invalid(what, `/from: the sender "${frame.from}" is not in its own table`, '/from')
  return frame
}

/** `value` as an answer to mesh.ping, or an `E_PAYLOAD_INVALID` naming the first problem. */
export function checkAck (value: unknown, what: string, maxDeltas: number): Ack {
  const ack = checkWith<Ack>('ack', ackSchema, value, what, maxDeltas)
  if (ack.self !== undefined && ack.self.id !== ack.from) throw invalid(what, `/self: the entry is member "${ack.self.id}" but the answer is from "${ack.from}"`, '/self')
  return ack
}

/** `value` as an answer to mesh.ping-req, or an `E_PAYLOAD_INVALID` naming the first problem. */
export function checkPingReqAnswer (value: unknown, what: string, maxDeltas: number): PingReqAnswer {
  return checkWith<PingReqAnswer>('ping-req answer', pingReqAnswerSchema, value, what, maxDeltas)
}

function invalid (what: string, problem: string, path: string): OriginError {
  const message = `${what} is invalid: ${problem}`
  return new OriginError('E_PAYLOAD_INVALID', message.length > MAX_ERROR_CHARS ? `${message.slice(0, MAX_ERROR_CHARS - 3)}...` : message, { path: path.slice(0, 200) })
}

// The checks for the default limits are declared at load, so the build compiles them ahead
// (node/validate.ts); other limits compile on their first frame.
checkerFor('frame', frameSchema, membershipDefaults.maxMembers)
checkerFor('ack', ackSchema, membershipDefaults.maxDeltasPerMessage)
checkerFor('ping-req answer', pingReqAnswerSchema, membershipDefaults.maxDeltasPerMessage)
