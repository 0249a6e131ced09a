/**
 * The state layer's mesh methods (all need a `node` certificate), their payload schemas,
 * and the checks on what comes back:
 *
 *   state.holdings { instance }                      -> Holdings: its directory here, the snapshot held here
 *   state.fetch    { instance, source, whileRunning } -> stream of archive items (see archive.ts)
 *   state.offer    { instance, from, generation, takenAt } -> { stored, reason }: pull that snapshot from `from`
 *   state.status   { instance? }                     -> StateStatus[]
 */
import type { Clock, Timer } from '../clock'
import { OriginError } from '../errors'
import { validator } from '../validate'
import type { Source } from './decide'

const instance = { type: 'string', minLength: 1, maxLength: 300 }
const generation = { type: 'integer', minimum: 1 }
const time = { type: 'integer', minimum: 0 }

export const holdingsPayload = { type: 'object', additionalProperties: false, required: ['instance'], properties: { instance } }
export const fetchPayload = {
  type: 'object',
  additionalProperties: false,
  required: ['instance', 'source'],
  properties: { instance, source: { type: 'string', enum: ['live', 'copy'] }, whileRunning: { type: 'boolean' } }
}
export const offerPayload = {
  type: 'object',
  additionalProperties: false,
  required: ['instance', 'from', 'generation', 'takenAt'],
  properties: { instance, from: { type: 'string', minLength: 1, maxLength: 300 }, generation, takenAt: time }
}
export const statusPayload = { type: 'object', additionalProperties: false, properties: { instance } }

export interface HoldingsRequest { instance: string }
export interface FetchRequest { instance: string, source: 'live' | 'copy', whileRunning?: boolean }
export interface OfferRequest { instance: string, from: string, generation: number, takenAt: number }
export interface StatusRequest { instance?: string }

export interface Holdings {
  node: string
  /** The instance's directory on that node. */
  live?: { generation: number, ageMs: number, running: boolean, hook: boolean }
  /** The newest snapshot of it that node holds. */
  copy?: { generation: number, ageMs: number, takenAt: number, source: string }
}

const nonNegative = { type: 'number', minimum: 0 }
const checkHoldingsAnswer = validator<Holdings>({
  type: 'object',
  required: ['node'],
  properties: {
    node: { type: 'string' },
    live: {
      type: 'object',
      required: ['generation', 'ageMs', 'running', 'hook'],
      properties: { generation, ageMs: nonNegative, running: { type: 'boolean' }, hook: { type: 'boolean' } }
    },
    copy: {
      type: 'object',
      required: ['generation', 'ageMs', 'takenAt', 'source'],
      properties: { generation, ageMs: nonNegative, takenAt: time, source: { type: 'string' } }
    }
  }
}, 'state.holdings answer')

/** An answer to state.holdings from `node`, checked, as decision sources. */
export function sourcesOf (node: string, answer: unknown): Source[] {
  const h = checkHoldingsAnswer(answer)
  if (h.node !== node) throw new OriginError('E_PAYLOAD_INVALID', `asked ${node} what it holds, and ${h.node} answered`, { node })
  const out: Source[] = []
  if (h.live !== undefined) out.push({ node, kind: 'live', generation: h.live.generation, ageMs: h.live.ageMs, running: h.live.running, hook: h.live.hook })
  if (h.copy !== undefined) out.push({ node, kind: 'copy', generation: h.copy.generation, ageMs: h.copy.ageMs, running: false, hook: false, takenBy: h.copy.source })
  return out
}

/** `items`, but failing with E_TIMEOUT (and cancelling the stream) when the whole of it takes over `ms` on `clock`. */
export async function * withDeadline<T> (clock: Clock, items: AsyncIterable<T>, ms: number, what: string): AsyncGenerator<T> {
  const it = items[Symbol.asyncIterator]()
  const deadline = clock.now() + ms
  let finished = false
  try {
    for (;;) {
      let timer: Timer | undefined
      const late = new Promise<never>((_resolve, reject) => {
        timer = clock.after(Math.max(0, deadline - clock.now()), () => reject(new OriginError('E_TIMEOUT', `${what} did not complete within ${ms} ms`, { timeoutMs: ms })))
      })
      const r = await Promise.race([it.next(), late]).finally(() => timer?.cancel())
      if (r.done === true) { finished = true; return }
      yield r.value
    }
  } finally {
    if (!finished) await it.return?.()
  }
}
