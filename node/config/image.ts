/**
 * image.json: a node image's configuration as data. Validated with ajv at start; a bad
 * one is refused with a message naming the field. Command-line flags override it.
 *
 * {
 *   "cluster": "prod",                      cluster name; must match the certificates' O
 *   "listen": "0.0.0.0:7400",               mesh port (mutual TLS)
 *   "advertise": "10.0.0.5:7400",           address others dial; default: listen
 *   "seeds": ["10.0.0.4:7400"],             nodes to try when joining
 *   "discovery": {                          more ways to find nodes, all at once, peers merged
 *     "seeds": ["10.0.0.6:7400"],
 *     "dns": { "name": "origin.prod.svc.cluster.local", "port": 7400, "intervalMs": 5000, "server": "10.0.0.2:53" },
 *     "git": { "url": "https://git.example.com/ops/peers.git", "ref": "main", "path": "prod", "token": "...", "intervalMs": 10000 },
 *     "plugin": { "module": "discovery/consul.js", "config": { ... } }   relative to the image dir
 *   },
 *   "data": "/var/lib/origin",              node id, logs; relative to the image dir
 *   "name": "edge-1",                       node id to take on first start (else generated)
 *   "labels": { "zone": "a" },
 *   "characteristics": { "cpus": 4, "memoryMb": 8192 },   override what is measured
 *   "membership": { "gossipIntervalMs": 200, "suspectAfterMs": 600, "deadAfterMs": 2000 },
 *   "hubs": { "count": 3, "memoryMargin": 0.1 },
 *   "spec": { "url": "https://git.example.com/ops/spec.git", "ref": "main", "token": "...",
 *             "pollIntervalMs": 5000, "webhookSecret": "...", "allowedSigners": ["ssh-ed25519 AAAA... alice"] },
 *   "specDir": "../spec",                   local development: a watched directory instead of git
 *   "log": { "level": "info", "maxBytes": 10485760, "keep": 5 },  node and instance logs rotate by size
 *   "secrets": "secrets"                    folder of secret files services take env values from
 *   "docker": { "socket": "/var/run/docker.sock" }   engine for container services (run.image); default DOCKER_HOST, else this path
 *   "health": { "eventLoopDelayMs": 1000, "minFreeMb": 256, ... }   when the node says it is unhealthy (node/health/config.ts)
 *   "layers": {                             a plugin instead of a built-in layer (see node/plugins.ts)
 *     "discovery": { "use": "discovery-file", "config": { "path": "peers.txt" } }   a name under plugins/, or a path (relative to the image dir)
 *   }
 * }
 *
 * Deploy-time facts that differ per machine come from the environment (`applyEnvironment`):
 * ORIGIN_LISTEN, ORIGIN_ADVERTISE, ORIGIN_DATA and ORIGIN_SEEDS override image.json, and
 * ORIGIN_DISCOVERY_DNS sets discovery.dns.name, checked against the same schema; a bad value
 * is refused naming the variable.
 */
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import type { SpecLimits } from '../desired/limits'
import { isPluginPath, REPLACEABLE_LAYERS, type LayerChoices } from '../plugins'
import { healthSchema, type HealthSettings } from '../health/config'
import { membershipDefaults, type MembershipInit } from '../membership/config'
import { validator } from '../validate'

export interface ImageConfig {
  cluster: string
  listen: string
  advertise?: string
  seeds: string[]
  /** Ways to find nodes besides `seeds` (see node/discovery). */
  discovery?: {
    seeds?: string[]
    dns?: { name: string, port?: number, intervalMs?: number, server?: string }
    git?: { url: string, ref?: string, path: string, token?: string, intervalMs?: number }
    plugin?: { module: string, config?: Record<string, unknown> }
  }
  data: string
  name?: string
  labels: Record<string, string>
  characteristics: { cpus?: number, memoryMb?: number }
  /** Failure detection and dissemination settings; each is documented with its trade-off in node/membership/config.ts. */
  membership: Pick<MembershipInit, 'gossipIntervalMs' | 'fanout' | 'suspectAfterMs' | 'deadAfterMs' | 'seedRetryMs' | 'probeTimeoutMs' | 'indirectProbes' | 'suspicionConfirmations' | 'maxLocalHealth' | 'retransmitMult' | 'maxDeltasPerMessage' | 'pushPullIntervalMs' | 'leaveTimeoutMs' | 'maxMembers'>
  hubs: { count?: number, memoryMargin?: number, ranking?: Array<'memory' | 'cpus' | 'uptime' | 'id'> }
  log: { level?: 'debug' | 'info' | 'warn' | 'error', maxBytes?: number, keep?: number }
  spec?: { url: string, ref?: string, token?: string, pollIntervalMs?: number, webhookSecret?: string, allowedSigners?: string[], tsTimeoutMs?: number, limits?: Partial<SpecLimits> }
  specDir?: string
  /** Folder of secret files (env values `{ "secret": name }`), relative to the image. */
  secrets?: string
  /** The Docker engine container services run on: a socket path, `unix:///path` or `tcp://host:port`. @default DOCKER_HOST, else /var/run/docker.sock */
  docker?: { socket?: string }
  /** Plugins that replace layers, by layer name (node/plugins.ts). A relative `use` path is made absolute from the image dir. */
  layers?: LayerChoices
  /** The bounds past which the node says it is unhealthy (node/health/config.ts has each default and its trade-off). */
  health?: HealthSettings
}

// The port part is 0-65535 spelled out: a pattern cannot compare numbers, and five digits alone let 99999 through.
const port = '([0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])'
const hostPort = { type: 'string', pattern: `^(\\[[0-9a-fA-F:]+\\]|[^:\\s\\[\\]]+):${port}$` }
const ms = { type: 'integer', minimum: 10, maximum: 3_600_000 }

export const imageSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['cluster'],
  properties: {
    $schema: { type: 'string' },
    cluster: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' },
    listen: hostPort,
    advertise: hostPort,
    seeds: { type: 'array', items: hostPort, maxItems: 100 },
    discovery: {
      type: 'object',
      additionalProperties: false,
      properties: {
        seeds: { type: 'array', items: hostPort, maxItems: 100 },
        dns: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            // A DNS name: labels of letters, digits, '-' and '_' (SRV names start with '_'), an optional final dot.
            name: { type: 'string', maxLength: 253, pattern: '^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\\.?$' },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            intervalMs: { type: 'integer', minimum: 100, maximum: 3_600_000 },
            server: { type: 'string', pattern: '^([0-9.]+|\\[[0-9a-fA-F:]+\\]|[0-9a-fA-F:]+)(:[0-9]{1,5})?$' }
          }
        },
        git: {
          type: 'object',
          additionalProperties: false,
          required: ['url', 'path'],
          properties: {
            url: { type: 'string', pattern: '^https?://' },
            ref: { type: 'string', minLength: 1, pattern: '^[^\\s~^:?*\\[]+$' },
            path: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[^\\s]+$' },
            token: { type: 'string', minLength: 1 },
            intervalMs: { type: 'integer', minimum: 100, maximum: 3_600_000 }
          }
        },
        plugin: {
          type: 'object',
          additionalProperties: false,
          required: ['module'],
          properties: {
            module: { type: 'string', minLength: 1 },
            config: { type: 'object' }
          }
        }
      }
    },
    data: { type: 'string', minLength: 1 },
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' },
    labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 253 }, maxProperties: 64 },
    characteristics: {
      type: 'object',
      additionalProperties: false,
      properties: { cpus: { type: 'integer', minimum: 1, maximum: 4096 }, memoryMb: { type: 'integer', minimum: 1 } }
    },
    membership: {
      type: 'object',
      additionalProperties: false,
      properties: {
        gossipIntervalMs: ms,
        fanout: { type: 'integer', minimum: 1, maximum: 64 },
        suspectAfterMs: ms,
        deadAfterMs: ms,
        seedRetryMs: ms,
        probeTimeoutMs: ms,
        indirectProbes: { type: 'integer', minimum: 0, maximum: 16 },
        suspicionConfirmations: { type: 'integer', minimum: 0, maximum: 64 },
        maxLocalHealth: { type: 'integer', minimum: 0, maximum: 64 },
        retransmitMult: { type: 'integer', minimum: 1, maximum: 64 },
        maxDeltasPerMessage: { type: 'integer', minimum: 1, maximum: 1024 },
        pushPullIntervalMs: ms,
        leaveTimeoutMs: ms,
        maxMembers: { type: 'integer', minimum: 1, maximum: 100_000 }
      }
    },
    hubs: {
      type: 'object',
      additionalProperties: false,
      properties: {
        count: { type: 'integer', minimum: 1, maximum: 15 },
        memoryMargin: { type: 'number', minimum: 0, maximum: 10 },
        ranking: { type: 'array', items: { enum: ['memory', 'cpus', 'uptime', 'id'] }, uniqueItems: true, minItems: 1 }
      }
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        level: { enum: ['debug', 'info', 'warn', 'error'] },
        maxBytes: { type: 'integer', minimum: 1024 },
        keep: { type: 'integer', minimum: 0, maximum: 100 }
      }
    },
    spec: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^https?://' },
        ref: { type: 'string', minLength: 1, pattern: '^[^\\s~^:?*\\[]+$' },
        token: { type: 'string', minLength: 1 },
        pollIntervalMs: { type: 'integer', minimum: 100, maximum: 3_600_000 },
        webhookSecret: { type: 'string', minLength: 8 },
        allowedSigners: { type: 'array', items: { type: 'string', pattern: '^(\\S+ )?(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$' } },
        tsTimeoutMs: { type: 'integer', minimum: 10, maximum: 60_000 },
        limits: {
          type: 'object',
          additionalProperties: false,
          properties: {
            totalMs: { type: 'integer', minimum: 10, maximum: 600_000 },
            fileMs: { type: 'integer', minimum: 10, maximum: 600_000 },
            memoryMb: { type: 'integer', minimum: 16, maximum: 65_536 },
            maxSpecBytes: { type: 'integer', minimum: 1024 },
            maxTsBytes: { type: 'integer', minimum: 1024 },
            maxOutputBytes: { type: 'integer', minimum: 1024 }
          }
        }
      }
    },
    specDir: { type: 'string', minLength: 1 },
    secrets: { type: 'string', minLength: 1 },
    docker: {
      type: 'object',
      additionalProperties: false,
      properties: { socket: { type: 'string', maxLength: 4096, pattern: '^(/|unix:///|tcp://)\\S+$' } }
    },
    health: healthSchema,
    layers: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(REPLACEABLE_LAYERS.map((layer) => [layer, {
        type: 'object',
        additionalProperties: false,
        required: ['use'],
        properties: {
          use: { type: 'string', minLength: 1, maxLength: 4096 },
          config: { type: 'object' }
        }
      }]))
    }
  }
}

const checkImage = validator<Partial<ImageConfig>>(imageSchema, 'image.json', 'E_CONFIG_INVALID')

/** Parse and validate an image.json text, filling defaults. */
export function parseImageConfig (text: string, source = 'image.json'): ImageConfig {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new OriginError('E_CONFIG_INVALID', `${source} is not valid JSON: ${errorMessage(err)}`, { file: source })
  }
  let v: Partial<ImageConfig>
  try {
    v = checkImage(raw)
  } catch (err) {
    throw new OriginError('E_CONFIG_INVALID', `${source}: ${errorMessage(err).replace(/^image\.json is invalid: /, '')}`, { file: source })
  }
  const m = { ...membershipDefaults, ...v.membership }
  if (m.suspectAfterMs >= m.deadAfterMs) {
    // Singletons are given up after suspectAfterMs out of touch, and no member is dead
    // sooner: the order is what keeps one from running twice.
    throw new OriginError('E_CONFIG_INVALID', `${source}: /membership: suspectAfterMs (${m.suspectAfterMs}) must be less than deadAfterMs (${m.deadAfterMs})`, { file: source })
  }
  return {
    cluster: v.cluster as string,
    listen: v.listen ?? '0.0.0.0:7400',
    advertise: v.advertise,
    seeds: v.seeds ?? [],
    ...(v.discovery === undefined ? {} : { discovery: v.discovery }),
    data: v.data ?? 'data',
    name: v.name,
    labels: v.labels ?? {},
    characteristics: v.characteristics ?? {},
    membership: v.membership ?? {},
    hubs: v.hubs ?? {},
    log: v.log ?? {},
    spec: v.spec,
    specDir: v.specDir,
    secrets: v.secrets,
    ...(v.docker === undefined ? {} : { docker: v.docker }),
    ...(v.layers === undefined ? {} : { layers: v.layers }),
    ...(v.health === undefined ? {} : { health: v.health })
  }
}

export async function readImageConfig (path: string): Promise<ImageConfig> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new OriginError('E_CONFIG_INVALID', `cannot read ${path}: ${errorMessage(err)}`, { file: path })
  }
  const config = parseImageConfig(text, path)
  // A discovery plugin's path is the image's, like its other files.
  const plugin = config.discovery?.plugin
  if (plugin !== undefined && !isAbsolute(plugin.module)) plugin.module = resolve(dirname(resolve(path)), plugin.module)
  // So are the layers' plugin paths; a bare name is a plugin under the project's plugins/, spec:<name> the spec repo's.
  for (const choice of Object.values(config.layers ?? {})) {
    if (isPluginPath(choice.use) && !isAbsolute(choice.use)) choice.use = resolve(dirname(resolve(path)), choice.use)
  }
  return config
}

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
export function applyEnvironment (config: ImageConfig, env: NodeJS.ProcessEnv | Record<string, string | undefined>): { config: ImageConfig, applied: EnvironmentVariable[] } {
  const out: ImageConfig = { ...config }
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
