/**
 * JSON Schemas for cluster and service specs, declared against the TS types with
 * `JSONSchemaType`: if a field is added to a type and not here (or the other way round),
 * tsc fails. Every object is closed (`additionalProperties: false`).
 *
 * `JSONSchemaType` wants `nullable: true` on every optional field; `compileSpecSchema`
 * strips it, so `null` is refused like any other wrong type: in a spec an absent field
 * and a null one are not the same thing.
 */
import type { ErrorObject, JSONSchemaType } from 'ajv'
import { schemaCheck } from '../validate'
import type { ClusterSpec, ServiceSpec } from './types'
import { RANK_KEYS as rankKeys } from '../vocabulary'

const ms = { type: 'integer', minimum: 0, maximum: 3_600_000, nullable: true } as const
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const
const anyCount = { type: 'integer', nullable: true } as const
const strings = { type: 'array', items: { type: 'string' }, maxItems: 1000, nullable: true } as const
const labels = {
  type: 'object',
  required: [],
  propertyNames: { type: 'string', minLength: 1, maxLength: 253 },
  additionalProperties: { type: 'string', maxLength: 253 },
  maxProperties: 64,
  nullable: true
} as const

export const clusterSchema: JSONSchemaType<ClusterSpec> = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' },
    minNodes: { type: 'integer', minimum: 1, maximum: 10_000, nullable: true },
    belowMinNodes: { type: 'string', enum: ['pause', 'stop', 'keep'], nullable: true },
    hubs: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        count: { type: 'integer', minimum: 1, maximum: 15, nullable: true },
        ranking: { type: 'array', items: { type: 'string', enum: rankKeys }, uniqueItems: true, minItems: 1, nullable: true },
        memoryMargin: { type: 'number', minimum: 0, maximum: 10, nullable: true }
      }
    },
    revokedSerials: {
      type: 'array',
      items: { type: 'string', pattern: '^[0-9A-Fa-f:]{1,128}$' },
      maxItems: 100_000,
      nullable: true
    },
    maxCommitMb: { type: 'integer', minimum: 1, maximum: 4096, nullable: true },
    operators: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        eval: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 64 }, maxItems: 1000, uniqueItems: true, nullable: true }
      }
    },
    downing: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        strategy: { type: 'string', enum: ['keep-majority', 'static-quorum', 'keep-oldest', 'lease'], nullable: true },
        afterMs: { type: 'integer', minimum: 0, maximum: 86_400_000, nullable: true },
        quorum: { type: 'integer', minimum: 1, maximum: 10_000, nullable: true }
      },
      if: { properties: { strategy: { const: 'static-quorum' } }, required: ['strategy'] },
      then: { properties: { quorum: { type: 'integer' } }, required: ['quorum'] }
    },
    membership: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        strategy: { type: 'string', enum: ['keep-majority', 'static-quorum', 'keep-oldest', 'lease'], nullable: true },
        downAfterMs: { type: 'integer', minimum: 0, maximum: 86_400_000, nullable: true },
        quorum: { type: 'integer', minimum: 1, maximum: 10_000, nullable: true }
      },
      if: { properties: { strategy: { const: 'static-quorum' } }, required: ['strategy'] },
      then: { properties: { quorum: { type: 'integer' } }, required: ['quorum'] }
    }
  },
  // (repeated here only because ajv's strictRequired wants the properties in the branch)
  not: { properties: { downing: { type: 'object' }, membership: { type: 'object' } }, required: ['downing', 'membership'] }
}

const secretName = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' } as const

const checks = {
  http: {
    type: 'object',
    additionalProperties: false,
    required: [],
    nullable: true,
    properties: { port: { ...port, nullable: true }, path: { type: 'string', pattern: '^/', nullable: true } }
  },
  tcp: { type: 'object', additionalProperties: false, required: [], nullable: true, properties: { port: { ...port, nullable: true } } },
  command: {
    type: 'object',
    additionalProperties: false,
    required: ['command'],
    nullable: true,
    properties: { command: { type: 'string', minLength: 1 }, args: strings }
  }
} as const

/** An image name as docker takes it: `redis:7`, `registry:5000/team/app:1.2`, `app@sha256:...`. */
const imageRef = '^[a-z0-9][a-z0-9._/:@-]{0,254}$'
/** Present at all, whatever its form: for "which of command and image" checks (the form is checked once, below). */
const anyImage = { anyOf: [{ type: 'string' }, { type: 'object' }] }
/** A relative path inside the code tree. */
const treePath = '^(?!/)(?!(.*/)?\\.\\.(/|$)).*$'

export const serviceSchema: JSONSchemaType<ServiceSpec> = {
  type: 'object',
  additionalProperties: false,
  required: ['run', 'placement'],
  // CPU shares and caps are the engine's: a host process has none (it is not in a cgroup of its own).
  if: { properties: { run: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] } }, required: ['run'] },
  then: { properties: { resources: { type: 'object', not: { anyOf: [{ properties: { cpuShares: { type: 'integer' } }, required: ['cpuShares'] }, { properties: { cpus: { type: 'number' } }, required: ['cpus'] }] } } } },
  properties: {
    run: {
      type: 'object',
      additionalProperties: false,
      required: [],
      // Exactly one of a host command and a container image.
      anyOf: [{ properties: { command: { type: 'string' } }, required: ['command'] }, { properties: { image: anyImage }, required: ['image'] }],
      not: { properties: { command: { type: 'string' }, image: anyImage }, required: ['command', 'image'] },
      // A container works in its image's WORKDIR; cwd is a path in the code tree, which a container does not see.
      if: { properties: { image: anyImage }, required: ['image'] },
      then: { not: { properties: { cwd: { type: 'string' } }, required: ['cwd'] } },
      properties: {
        command: { type: 'string', minLength: 1, nullable: true },
        image: {
          nullable: true,
          anyOf: [
            { type: 'string', pattern: imageRef },
            {
              type: 'object',
              additionalProperties: false,
              required: [],
              minProperties: 1,
              not: { properties: { load: { type: 'string' }, build: { type: 'object' } }, required: ['load', 'build'] },
              properties: {
                ref: { type: 'string', pattern: imageRef, nullable: true },
                load: { type: 'string', minLength: 1, maxLength: 4096, pattern: treePath, nullable: true },
                build: {
                  type: 'object',
                  additionalProperties: false,
                  required: [],
                  nullable: true,
                  properties: { dockerfile: { type: 'string', minLength: 1, maxLength: 4096, pattern: treePath, nullable: true } }
                }
              }
            }
          ]
        },
        args: strings,
        env: {
          type: 'object',
          required: [],
          nullable: true,
          propertyNames: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
          maxProperties: 1000,
          additionalProperties: {
            anyOf: [
              { type: 'string', maxLength: 65536 },
              { type: 'object', additionalProperties: false, required: ['secret'], properties: { secret: secretName } }
            ]
          }
        },
        cwd: { type: 'string', minLength: 1, pattern: '^(?!/)(?!(.*/)?\\.\\.(/|$)).*$', nullable: true }
      }
    },
    code: {
      type: 'object',
      additionalProperties: false,
      required: ['repo'],
      nullable: true,
      properties: {
        repo: { type: 'string', pattern: '^https?://[^\\s/]+/\\S*$' },
        ref: { type: 'string', pattern: '^[^\\s]{1,255}$', nullable: true },
        build: { type: 'string', minLength: 1, nullable: true }
      }
    },
    placement: {
      type: 'object',
      additionalProperties: false,
      required: ['kind'],
      properties: {
        kind: { type: 'string', enum: ['every', 'hubs', 'singleton', 'replicas'] },
        count: { type: 'integer', minimum: 1, maximum: 100_000, nullable: true },
        labels,
        minCpus: { type: 'number', minimum: 0, nullable: true },
        minMemoryMb: { type: 'integer', minimum: 0, nullable: true },
        arch: { type: 'string', minLength: 1, nullable: true }
      },
      // (`count` is repeated in then/else only because ajv's strictRequired looks for it there)
      if: { properties: { kind: { type: 'string', const: 'replicas' } } },
      then: { properties: { count: anyCount }, required: ['count'] },
      else: { not: { properties: { count: anyCount }, required: ['count'] } }
    },
    resources: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        memoryMb: { type: 'integer', minimum: 1, nullable: true },
        maxInstancesPerNode: { type: 'integer', minimum: 1, nullable: true },
        cpuShares: { type: 'integer', minimum: 2, maximum: 262_144, nullable: true },
        cpus: { type: 'number', exclusiveMinimum: 0, maximum: 4096, nullable: true }
      }
    },
    health: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        ...checks,
        intervalMs: ms,
        timeoutMs: ms,
        startPeriodMs: ms
      },
      // (the checks are repeated in each branch only because ajv's strictRequired wants them there)
      not: {
        anyOf: [
          { properties: checks, required: ['http', 'tcp'] },
          { properties: checks, required: ['http', 'command'] },
          { properties: checks, required: ['tcp', 'command'] }
        ]
      }
    },
    restart: {
      type: 'object',
      additionalProperties: false,
      required: ['policy'],
      nullable: true,
      properties: {
        policy: { type: 'string', enum: ['always', 'on-failure', 'never'] },
        backoffMs: ms,
        maxBackoffMs: ms
      }
    },
    stopGraceMs: ms,
    paths: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^(?!/)(?!(.*/)?\\.\\.(/|$)).*$' },
      maxItems: 1000,
      nullable: true
    },
    ports: {
      type: 'object',
      required: [],
      nullable: true,
      minProperties: 1,
      maxProperties: 32,
      propertyNames: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,31}$' },
      additionalProperties: { type: 'object', additionalProperties: false, required: [], properties: { port: { ...port, nullable: true } } }
    },
    bind: { type: 'string', enum: ['node', 'loopback', 'any'], nullable: true },
    state: {
      type: 'object',
      additionalProperties: false,
      required: ['mode'],
      nullable: true,
      properties: {
        mode: { type: 'string', enum: ['local', 'migrate', 'replicate'] },
        intervalMs: { type: 'integer', minimum: 100, maximum: 86_400_000, nullable: true },
        copies: { type: 'integer', minimum: 1, maximum: 16, nullable: true },
        before: {
          type: 'object',
          additionalProperties: false,
          required: ['command'],
          nullable: true,
          properties: { command: { type: 'string', minLength: 1 }, args: strings, timeoutMs: ms }
        }
      }
    },
    uses: {
      type: 'array',
      items: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(:[a-z][a-z0-9_]{0,31})?$' },
      uniqueItems: true,
      maxItems: 64,
      nullable: true
    },
    publish: {
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      nullable: true,
      properties: {
        port,
        on: {
          anyOf: [
            { type: 'string', enum: ['every', 'hubs'] },
            { type: 'object', required: [], propertyNames: { type: 'string', minLength: 1, maxLength: 253 }, additionalProperties: { type: 'string', maxLength: 253 }, maxProperties: 64 }
          ],
          nullable: true
        },
        target: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,31}$', nullable: true },
        http: { type: 'boolean', nullable: true }
      }
    },
    route: {
      type: 'object',
      additionalProperties: false,
      required: ['key'],
      nullable: true,
      properties: {
        key: {
          type: 'object',
          additionalProperties: false,
          required: [],
          minProperties: 1,
          maxProperties: 1,
          properties: {
            header: { type: 'string', pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]{1,128}$', nullable: true },
            pathSegment: { type: 'integer', minimum: 0, maximum: 64, nullable: true }
          }
        }
      }
    },
    admission: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        maxInFlight: { type: 'integer', minimum: 1, maximum: 1_000_000, nullable: true },
        maxKeys: { type: 'integer', minimum: 1, maximum: 1_000_000, nullable: true }
      }
    }
  }
}

/** Messages for the checks whose ajv wording would not help a person, by schema path. */
const overrides: Record<string, { field?: string, message: string }> = {
  '#/not': { field: 'membership', message: 'gives the downing settings a second time: keep "membership" or "downing", not both' },
  '#/properties/placement/then/required': { message: 'is required when kind is "replicas"' },
  '#/properties/placement/else/not': { field: 'count', message: 'is allowed only when kind is "replicas"' },
  '#/properties/health/not': { message: 'may use at most one of http, tcp, command' },
  '#/properties/run/properties/cwd/pattern': { message: 'must be a relative path inside the code root' },
  '#/properties/run/anyOf': { message: 'must give "command" (a host process) or "image" (Docker containers)' },
  '#/properties/run/not': { message: 'gives both "command" and "image": give one (a host process or Docker containers)' },
  '#/then/properties/resources/not': { message: 'gives cpuShares or cpus, which apply to container services (run.image) only: a host process has no CPU weight or cap of its own' },
  '#/properties/run/then/not': { field: 'cwd', message: 'is for commands only: a container works in its image\'s WORKDIR' },
  '#/properties/run/properties/image/anyOf': { message: 'must be an image name on the node ("redis:7") or { "ref"?, "load": "<tarball in the code tree>" } or { "ref"?, "build": { "dockerfile"? } }' },
  '#/properties/run/properties/env/propertyNames/pattern': { message: 'must be a valid environment variable name' },
  '#/properties/run/properties/env/additionalProperties/anyOf': { message: 'must be a string or { "secret": "<name of a file in the image\'s secrets/ folder>" }' },
  '#/properties/paths/items/pattern': { message: 'must be a relative path inside the spec repo' },
  '#/properties/ports/propertyNames/pattern': { message: 'must be 1-32 lower-case letters, digits or "_", starting with a letter' },
  '#/properties/uses/items/pattern': { message: 'must be a service name, optionally with ":<port name>" (e.g. "redis" or "api:admin")' },
  '#/properties/publish/properties/on/anyOf': { message: 'must be "every", "hubs" or { "<label>": "<value>" }' },
  '#/properties/route/properties/key/maxProperties': { message: 'must name one of header or pathSegment, not both' },
  '#/properties/route/properties/key/minProperties': { message: 'must name one of header or pathSegment' },
  '#/properties/code/properties/repo/pattern': { message: 'must be an http(s) git URL' },
  '#/properties/revokedSerials/items/pattern': { message: 'must be a hex certificate serial (colons allowed)' },
  '#/properties/name/pattern': { message: 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit' }
}

/** One schema violation: where in the value (JSON pointer) and what is wrong. */
export interface SchemaProblem { path: string, message: string }

/** A compiled spec schema: the value typed, or every problem with it. */
export type SpecValidator<T> = (value: unknown) => { ok: true, value: T } | { ok: false, problems: SchemaProblem[] }

function pointer (base: string, field: string): string {
  return `${base}/${field.replace(/~/g, '~0').replace(/\//g, '~1')}`
}

function withoutNullable (schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutNullable)
  if (schema === null || typeof schema !== 'object') return schema
  return Object.fromEntries(Object.entries(schema).filter(([k]) => k !== 'nullable').map(([k, v]) => [k, withoutNullable(v)]))
}

/** The subschema at a `#/a/b` schema path. */
function at (schema: unknown, schemaPath: string): unknown {
  let node = schema
  for (const part of schemaPath.replace(/^#\/?/, '').split('/').filter((p) => p !== '')) {
    node = (node as Record<string, unknown> | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')]
  }
  return node
}

/** An ajv error as a problem a person can act on; undefined for ones that only repeat another. */
function describe (schema: object, e: ErrorObject): SchemaProblem | undefined {
  // `if` only says which branch failed, `propertyNames` only that a name failed: the
  // branch's and the name's own errors follow with the details.
  if (e.keyword === 'if' || e.keyword === 'propertyNames') return undefined
  // A branch of an `anyOf` that has its own message: that message says it all.
  const branch = /^(.*\/anyOf)\/\d+\//.exec(e.schemaPath)
  if (branch !== null && overrides[branch[1]] !== undefined) return undefined
  const override = overrides[e.schemaPath]
  if (e.keyword === 'required') {
    const field = String(e.params.missingProperty)
    return { path: pointer(e.instancePath, field), message: override?.message ?? `missing required field "${field}"` }
  }
  if (e.keyword === 'additionalProperties') {
    const field = String(e.params.additionalProperty)
    const parent = at(schema, e.schemaPath.replace(/\/additionalProperties$/, '')) as { properties?: object } | undefined
    const allowed = Object.keys(parent?.properties ?? {})
    return { path: pointer(e.instancePath, field), message: `unknown field "${field}"` + (allowed.length > 0 ? ` (allowed: ${allowed.join(', ')})` : '') }
  }
  if (e.propertyName !== undefined) {
    return { path: pointer(e.instancePath, e.propertyName), message: `the name ${override?.message ?? e.message ?? 'is invalid'}` }
  }
  if (override !== undefined) {
    return { path: override.field === undefined ? e.instancePath : pointer(e.instancePath, override.field), message: override.message }
  }
  if (e.keyword === 'enum') {
    const allowed = (e.params.allowedValues as unknown[]).map(String).join(', ')
    return { path: e.instancePath, message: `must be equal to one of the allowed values (${allowed})` }
  }
  return { path: e.instancePath, message: e.message ?? 'is invalid' }
}

/**
 * A spec schema's check (with `nullable` stripped, see above), loaded on its first use:
 * only a node that loads a spec pays for it (the two spec schemas took ~110 ms and ~2 MiB
 * of a node's start when compiled there); `compileAll()` loads it for the schema test.
 */
export function compileSpecSchema<T> (schema: JSONSchemaType<T>): SpecValidator<T> {
  const stripped = withoutNullable(schema) as object
  const compiled = schemaCheck<T>(stripped, 'all')
  return (value) => {
    const validate = compiled()
    return validate(value)
      ? { ok: true, value }
      : { ok: false, problems: (validate.errors ?? []).flatMap((e) => describe(stripped, e) ?? []) }
  }
}

export const validateCluster = compileSpecSchema(clusterSchema)
export const validateService = compileSpecSchema(serviceSchema)
