/**
 * Every JSON shape origin accepts from outside (image.json, frames, RPC payloads, specs) is
 * checked by ajv. `validator(schema, what)` returns a function that either returns the
 * value typed or throws an OriginError naming the JSON path and what is wrong.
 *
 * An error names at most `MAX_REPORTED_ERRORS` problems (and how many more there were), so
 * a huge invalid value yields a small error. `validator(..., { firstError: true })` stops at
 * the first problem: for what peers send, where collecting every error of a hostile value
 * costs more than the value (9,000 bad members: 150 ms and 43 MiB).
 *
 * Compiled ahead: `npm run build` compiles every schema a started node declares into a
 * module of its own (build/schemas.ts writes them to dist/node/schemas), keyed by a hash of
 * the schema and the mode. A check loads its module on first use; ajv itself loads only for
 * a schema the build did not see (a spec repo's plugin, non-default limits). Compiling at
 * start was a third of a node's start-up CPU (~0.5 s) and kept ajv's compiler in memory.
 */
import { createHash } from 'node:crypto'
import type Ajv from 'ajv'
import type { ErrorObject, JSONSchemaType, Options, ValidateFunction } from 'ajv'
import { OriginError, type ErrorCode } from './errors'

/** How a schema is checked: every problem reported, or only the first (what peers send). */
export type CheckMode = 'all' | 'first'

/** Each mode's ajv options; the build compiles with the same (code it generates must match). */
export const AJV_OPTIONS: Readonly<Record<CheckMode, Options>> = {
  all: { allErrors: true, strict: true, useDefaults: false, discriminator: true },
  first: { allErrors: false, strict: true, useDefaults: false, discriminator: true }
}

const instances: Partial<Record<CheckMode, Ajv>> = {}

/** The mode's ajv instance, made on first need. */
export function ajvFor (mode: CheckMode): Ajv {
  const AjvClass = (require('ajv') as typeof import('ajv')).default
  return (instances[mode] ??= new AjvClass(AJV_OPTIONS[mode]))
}

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

/** A schema a check was declared with. */
export interface DeclaredSchema { schema: object, mode: CheckMode, key: string }

interface Declaration { schema: object, mode: CheckMode, loaded?: ValidateFunction }

/** Every check declared so far (the build compiles their schemas; `compileAll` loads them). */
const declared = new Set<Declaration>()
/** Checks whose schema was not among the build's and were compiled here instead. */
let compiledHere = 0

/** The key of a schema's compiled module: a hash of the mode and the schema's JSON. */
export function schemaKey (schema: object, mode: CheckMode): string {
  return createHash('sha256').update(`${mode}\0${JSON.stringify(schema)}`).digest('hex').slice(0, 24)
}

type Store = Record<string, () => ValidateFunction>
let store: Store | undefined

/** The build's compiled schemas (none when it did not run: every check then compiles here). */
function compiledAhead (): Store {
  if (store !== undefined) return store
  try {
    store = require('./schemas/index.js') as Store
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err
    store = {}
  }
  return store
}

/** `d`'s check: its compiled module when the build made one, else compiled by ajv here. */
function load (d: Declaration): ValidateFunction {
  if (d.loaded === undefined) {
    const ahead = compiledAhead()[schemaKey(d.schema, d.mode)]
    if (ahead !== undefined) d.loaded = ahead()
    else {
      d.loaded = ajvFor(d.mode).compile(d.schema)
      compiledHere++
    }
  }
  return d.loaded
}

/**
 * The check of `schema` in `mode`, declared now and loaded on its first use: an idle node
 * never pays for the schemas of what it is not asked.
 */
export function schemaCheck<T> (schema: JSONSchemaType<T> | object, mode: CheckMode): () => ValidateFunction<T> {
  const d: Declaration = { schema, mode }
  declared.add(d)
  return () => (d.loaded ?? load(d)) as ValidateFunction<T>
}

/**
 * A check of `schema` (see `schemaCheck`). `compileAll()` loads every check made so far,
 * so a test finds a bad schema without waiting for its first value.
 */
export function validator<T> (schema: JSONSchemaType<T> | object, what: string, code: ErrorCode = 'E_PAYLOAD_INVALID', o: ValidatorOptions = {}): Check<T> {
  const compiled = schemaCheck<T>(schema, o.firstError === true ? 'first' : 'all')
  return (value: unknown): T => {
    const validate = compiled()
    if (validate(value)) return value
    const errors = validate.errors ?? []
    const data: Record<string, unknown> = {
      errors: errors.slice(0, MAX_REPORTED_ERRORS).map((e) => ({ path: clip(e.instancePath), message: e.message, params: clipParams(e.params) }))
    }
    if (errors.length > MAX_REPORTED_ERRORS) data.more = errors.length - MAX_REPORTED_ERRORS
    throw new OriginError(code, `${what} is invalid: ${describeErrors(errors)}`, data)
  }
}

/** Loads every check declared and not used yet (throws on the first bad schema); how many there were. */
export function compileAll (): number {
  const all = [...declared].filter((d) => d.loaded === undefined)
  for (const d of all) load(d)
  return all.length
}

/** Every schema declared so far, once each (what the build compiles). */
export function declaredSchemas (): DeclaredSchema[] {
  const byKey = new Map<string, DeclaredSchema>()
  for (const d of declared) {
    const key = schemaKey(d.schema, d.mode)
    if (!byKey.has(key)) byKey.set(key, { schema: d.schema, mode: d.mode, key })
  }
  return [...byKey.values()]
}

/** How many checks were compiled here because the build had not compiled their schema. */
export function checksCompiledHere (): number {
  return compiledHere
}
