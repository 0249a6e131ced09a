/**
 * Deploy-time facts that differ per machine come from the environment: ORIGIN_LISTEN,
 * ORIGIN_ADVERTISE, ORIGIN_DATA and ORIGIN_SEEDS override image.json, and
 * ORIGIN_DISCOVERY_DNS sets discovery.dns.name, each checked against image.json's schema
 * for its field; a bad value is refused naming the variable.
 */
import { OriginError } from '../errors'
import { validator } from '../validate'
import { imageSchema, type ImageConfig } from './schema'

/** The variables `applyEnvironment` reads, and the image.json field each overrides. */
export const ENVIRONMENT_OVERRIDES = {
  ORIGIN_LISTEN: 'listen',
  ORIGIN_ADVERTISE: 'advertise',
  ORIGIN_DATA: 'data',
  ORIGIN_SEEDS: 'seeds'
} as const

type FieldVariable = keyof typeof ENVIRONMENT_OVERRIDES
export type EnvironmentVariable = FieldVariable | 'ORIGIN_DISCOVERY_DNS'

const checkField = Object.fromEntries(Object.entries(ENVIRONMENT_OVERRIDES).map(([name, field]) => [
  name,
  validator<unknown>((imageSchema.properties as Record<string, object>)[field], name, 'E_CONFIG_INVALID')
])) as Record<FieldVariable, (value: unknown) => unknown>

const hostPortHint = 'HOST:PORT with a port from 0 to 65535 (e.g. 10.0.0.5:7400 or [fd00::5]:7400)'

/** One variable's value checked as its image.json field; E_CONFIG_INVALID naming the variable. */
function checkVariable (name: FieldVariable, raw: string, value: unknown): void {
  try {
    checkField[name](value)
  } catch {
    const hint = name === 'ORIGIN_DATA' ? 'a directory path' : name === 'ORIGIN_SEEDS' ? `a list of ${hostPortHint}, separated by commas or spaces` : hostPortHint
    let detail = ''
    if (name === 'ORIGIN_SEEDS' && Array.isArray(value)) {
      const bad = value.findIndex((s) => { try { checkField.ORIGIN_LISTEN(s); return false } catch { return true } })
      if (bad >= 0) detail = ` (entry ${bad + 1}, "${String(value[bad])}", is not HOST:PORT)`
      else if (value.length > 100) detail = ` (${value.length} entries; at most 100)`
    }
    throw new OriginError('E_CONFIG_INVALID', `${name} must be ${hint}, got "${raw.length > 200 ? `${raw.slice(0, 200)}...` : raw}"${detail}`, { variable: name, field: ENVIRONMENT_OVERRIDES[name] })
  }
}

/**
 * `config` with the ORIGIN_* overrides found in `env` applied. An empty ORIGIN_SEEDS means
 * no seeds; the other variables may not be empty. ORIGIN_DATA is returned as given: the
 * caller resolves a relative path (against the working directory, like a flag).
 */
export function applyEnvironment<C extends ImageConfig> (config: C, env: NodeJS.ProcessEnv | Record<string, string | undefined>): { config: C, applied: EnvironmentVariable[] } {
  const out: C = { ...config }
  const applied: EnvironmentVariable[] = []
  for (const name of Object.keys(ENVIRONMENT_OVERRIDES) as FieldVariable[]) {
    const raw = env[name]
    if (raw === undefined) continue
    const value = name === 'ORIGIN_SEEDS' ? raw.split(/[\s,]+/).filter((s) => s !== '') : raw.trim()
    checkVariable(name, raw, value)
    if (name === 'ORIGIN_LISTEN') out.listen = value as string
    else if (name === 'ORIGIN_ADVERTISE') out.advertise = value as string
    else if (name === 'ORIGIN_DATA') out.data = value as string
    else out.seeds = value as string[]
    applied.push(name)
  }
  // ORIGIN_DISCOVERY_DNS: a name whose records list the peers (a Kubernetes headless Service).
  const dnsName = env.ORIGIN_DISCOVERY_DNS
  if (dnsName !== undefined) {
    const name = dnsName.trim()
    try {
      checkDnsName(name)
    } catch {
      throw new OriginError('E_CONFIG_INVALID', `ORIGIN_DISCOVERY_DNS must be a DNS name (e.g. origin-prod.default.svc.cluster.local), got "${dnsName.slice(0, 200)}"`, { variable: 'ORIGIN_DISCOVERY_DNS', field: 'discovery.dns.name' })
    }
    out.discovery = { ...out.discovery, dns: { ...out.discovery?.dns, name } }
    applied.push('ORIGIN_DISCOVERY_DNS')
  }
  return { config: out, applied }
}

const checkDnsName = validator<string>(((imageSchema.properties.discovery as { properties: { dns: { properties: { name: object } } } }).properties.dns.properties.name), 'ORIGIN_DISCOVERY_DNS', 'E_CONFIG_INVALID')
