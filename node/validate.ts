/**
 * One ajv instance for every JSON shape origin accepts from outside: image.json, frames,
 * RPC payloads. `validator(schema, what)` returns a function that either returns the
 * value typed or throws an OriginError naming the JSON path and what is wrong.
 */
import Ajv, { type ErrorObject, type JSONSchemaType } from 'ajv'
import { OriginError, type ErrorCode } from './errors'

export const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: false, discriminator: true })

export function describeErrors (errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => {
    const at = e.instancePath === '' ? '(root)' : e.instancePath
    if (e.keyword === 'additionalProperties') return `${at}: unknown field "${String(e.params.additionalProperty)}"`
    if (e.keyword === 'required') return `${at}: missing required field "${String(e.params.missingProperty)}"`
    return `${at}: ${e.message ?? 'is invalid'}`
  }).join('; ')
}

export type Check<T> = (value: unknown) => T

export function validator<T> (schema: JSONSchemaType<T> | object, what: string, code: ErrorCode = 'E_PAYLOAD_INVALID'): Check<T> {
  const validate = ajv.compile<T>(schema as JSONSchemaType<T>)
  return (value: unknown): T => {
    if (validate(value)) return value
    throw new OriginError(code, `${what} is invalid: ${describeErrors(validate.errors)}`, {
      errors: (validate.errors ?? []).map((e) => ({ path: e.instancePath, message: e.message, params: e.params }))
    })
  }
}
