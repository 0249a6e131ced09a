/**
 * One ajv instance for every JSON shape origin accepts from outside: image.json, frames,
 * RPC payloads. `validator(schema, what)` returns a function that either returns the
 * value typed or throws an OriginError naming the JSON path and what is wrong.
 *
 * An error names at most `MAX_REPORTED_ERRORS` problems (and how many more there were), so
 * a huge invalid value yields a small error. `validator(..., { firstError: true })` stops at
 * the first problem: for what peers send, where collecting every error of a hostile value
 * costs more than the value (9,000 bad members: 150 ms and 43 MB).
 */
import Ajv, { type ErrorObject, type JSONSchemaType } from 'ajv'
import { OriginError, type ErrorCode } from './errors'

export const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: false, discriminator: true })
/** The instance for checks that stop at the first problem (what peers send). */
export const firstErrorAjv = new Ajv({ allErrors: false, strict: true, useDefaults: false, discriminator: true })

export const MAX_REPORTED_ERRORS = 10

function clip (s: string, max = 200): string {
  return s.length <= max ? s : `${s.slice(0, max)}...`
}

/** A problem's params with strings from the value (an unknown key may be megabytes long) clipped. */
function clipParams (params: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === 'string' ? clip(v) : v]))
}

export function describeErrors (errors: ErrorObject[] | null | undefined): string {
  const all = errors ?? []
  const shown = all.slice(0, MAX_REPORTED_ERRORS).map((e) => {
    const at = e.instancePath === '' ? '(root)' : clip(e.instancePath)
    if (e.keyword === 'additionalProperties') return `${at}: unknown field "${clip(String(e.params.additionalProperty))}"`
    if (e.keyword === 'required') return `${at}: missing required field "${clip(String(e.params.missingProperty))}"`
    return `${at}: ${e.message ?? 'is invalid'}`
  })
  if (all.length > MAX_REPORTED_ERRORS) shown.push(`and ${all.length - MAX_REPORTED_ERRORS} more`)
  return shown.join('; ')
}

export type Check<T> = (value: unknown) => T

export interface ValidatorOptions {
  /** Stop at the first problem instead of collecting them all. @default false */
  firstError?: boolean
}

/** Validators not compiled yet (compileAll compiles them: the schema test). */
const pending = new Set<() => void>()

/**
 * A check of `schema`, compiled on its first use: an idle node never pays for the schemas
 * of what it is not asked (compiling them all at start cost ~380 ms and ~5.5 MiB).
 * `compileAll()` compiles every validator made so far, so a test finds a bad schema
 * without waiting for its first value.
 */
export function validator<T> (schema: JSONSchemaType<T> | object, what: string, code: ErrorCode = 'E_PAYLOAD_INVALID', o: ValidatorOptions = {}): Check<T> {
  const compile = onFirstUse(() => (o.firstError === true ? firstErrorAjv : ajv).compile<T>(schema as JSONSchemaType<T>))
  return (value: unknown): T => {
    const validate = compile()
    if (validate(value)) return value
    const errors = validate.errors ?? []
    const data: Record<string, unknown> = {
      errors: errors.slice(0, MAX_REPORTED_ERRORS).map((e) => ({ path: clip(e.instancePath), message: e.message, params: clipParams(e.params) }))
    }
    if (errors.length > MAX_REPORTED_ERRORS) data.more = errors.length - MAX_REPORTED_ERRORS
    throw new OriginError(code, `${what} is invalid: ${describeErrors(errors)}`, data)
  }
}

/**
 * `compile` run on the first call of the function returned, its result kept; until then
 * it is pending, so `compileAll()` runs it too. For validators made outside `validator`
 * (the spec schemas, with their own error shape).
 */
export function onFirstUse<F> (compile: () => F): () => F {
  let compiled: { value: F } | undefined
  const get = (): F => {
    if (compiled === undefined) {
      compiled = { value: compile() }
      pending.delete(get)
    }
    return compiled.value
  }
  pending.add(get)
  return get
}

/** Compiles every validator made so far (throws on the first bad schema); how many there were. */
export function compileAll (): number {
  const all = [...pending]
  for (const compile of all) compile()
  return all.length
}
