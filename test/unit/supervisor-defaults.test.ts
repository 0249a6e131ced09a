import test from 'ava'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { serviceDefaults } from '../../node/supervisor/policy'

/** The spec's documentation, read as written (tests run from dist/test/unit). */
const typesTs = readFileSync(join(__dirname, '..', '..', '..', 'node', 'desired', 'types.ts'), 'utf8')

/** The number after `@default` in the doc comment of `field` inside `interface name { ... }`. */
function documentedDefault (name: string, field: string, text = typesTs): number | undefined {
  const body = new RegExp(`export interface ${name} \\{([\\s\\S]*?)\\n\\}`).exec(text)?.[1]
  if (body === undefined) throw new Error(`interface ${name} not found in node/desired/types.ts`)
  const doc = new RegExp(`/\\*\\*((?:(?!\\*/)[\\s\\S])*?)\\*/\\s*${field}\\?:`).exec(body)?.[1]
  const value = doc === undefined ? undefined : /@default\s+([0-9_]+)/.exec(doc)?.[1]
  return value === undefined ? undefined : Number(value.replace(/_/g, ''))
}

const documented: Array<[string, string, keyof typeof serviceDefaults]> = [
  ['RestartSpec', 'backoffMs', 'backoffMs'],
  ['RestartSpec', 'maxBackoffMs', 'maxBackoffMs'],
  ['HealthSpec', 'intervalMs', 'healthIntervalMs'],
  ['HealthSpec', 'timeoutMs', 'healthTimeoutMs'],
  ['HealthSpec', 'startPeriodMs', 'healthStartPeriodMs'],
  ['ServiceSpec', 'stopGraceMs', 'stopGraceMs']
]

for (const [iface, field, key] of documented) {
  test(`defaults: ${iface}.${field} is documented in node/desired/types.ts as the supervisor runs it (${key})`, (t) => {
    t.is(documentedDefault(iface, field), serviceDefaults[key], `${iface}.${field}: @default in types.ts vs serviceDefaults.${key} in node/supervisor/policy.ts`)
  })
}

test('defaults: the reader sees a drifted @default, and a field without one', (t) => {
  const drifted = 'export interface RestartSpec {\n  /** First delay. @default 1000 */\n  backoffMs?: number\n}\n'
  t.is(documentedDefault('RestartSpec', 'backoffMs', drifted), 1000)
  t.not(documentedDefault('RestartSpec', 'backoffMs', drifted), serviceDefaults.backoffMs)
  t.is(documentedDefault('RestartSpec', 'policy'), undefined, 'a field without a numeric default reads as none')
  t.throws(() => documentedDefault('NoSuchSpec', 'x'), { message: /NoSuchSpec not found/ })
})
