/**
 * image.json: a node image's configuration as data. Validated with ajv at start; a bad
 * one is refused with a message naming the field. Command-line flags override it.
 *
 * {
 *   "cluster": "prod",                      cluster name; must match the certificates' O
 *   "listen": "0.0.0.0:7400",               mesh port (mutual TLS)
 *   "advertise": "10.0.0.5:7400",           address others dial; default: listen
 *   "seeds": ["10.0.0.4:7400"],             nodes to try when joining
 *   "data": "/var/lib/origin",              node id, logs; relative to the image dir
 *   "name": "edge-1",                       node id to take on first start (else generated)
 *   "labels": { "zone": "a" },
 *   "characteristics": { "cpus": 4, "memoryMb": 8192 },   override what is measured
 *   "membership": { "gossipIntervalMs": 200, "suspectAfterMs": 2500, "deadAfterMs": 5000 },
 *   "hubs": { "count": 3, "memoryMargin": 0.1 },
 *   "spec": { "url": "https://git.example.com/ops/spec.git", "ref": "main", "token": "...",
 *             "pollIntervalMs": 5000, "webhookSecret": "...", "allowedSigners": ["ssh-ed25519 AAAA... alice"] },
 *   "specDir": "../spec",                   local development: a watched directory instead of git
 *   "log": { "level": "info", "maxBytes": 10485760, "keep": 5 },  node and instance logs rotate by size
 *   "secrets": "secrets"                    folder of secret files services take env values from
 * }
 */
import { readFile } from 'node:fs/promises'
import { OriginError, errorMessage } from '../errors'
import type { SpecLimits } from '../spec/limits'
import { validator } from '../validate'

export interface ImageConfig {
  cluster: string
  listen: string
  advertise?: string
  seeds: string[]
  data: string
  name?: string
  labels: Record<string, string>
  characteristics: { cpus?: number, memoryMb?: number }
  membership: { gossipIntervalMs?: number, fanout?: number, suspectAfterMs?: number, deadAfterMs?: number, seedRetryMs?: number }
  hubs: { count?: number, memoryMargin?: number, ranking?: Array<'memory' | 'cpus' | 'uptime' | 'id'> }
  log: { level?: 'debug' | 'info' | 'warn' | 'error', maxBytes?: number, keep?: number }
  spec?: { url: string, ref?: string, token?: string, pollIntervalMs?: number, webhookSecret?: string, allowedSigners?: string[], tsTimeoutMs?: number, limits?: Partial<SpecLimits> }
  specDir?: string
  /** Folder of secret files (env values `{ "secret": name }`), relative to the image. */
  secrets?: string
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
        seedRetryMs: ms
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
    secrets: { type: 'string', minLength: 1 }
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
  const suspect = v.membership?.suspectAfterMs ?? 2500
  const dead = v.membership?.deadAfterMs ?? 5000
  if (suspect >= dead) {
    // Singletons are given up after suspectAfterMs and started elsewhere after deadAfterMs:
    // the order is what keeps one from running twice.
    throw new OriginError('E_CONFIG_INVALID', `${source}: /membership: suspectAfterMs (${suspect}) must be less than deadAfterMs (${dead})`, { file: source })
  }
  return {
    cluster: v.cluster as string,
    listen: v.listen ?? '0.0.0.0:7400',
    advertise: v.advertise,
    seeds: v.seeds ?? [],
    data: v.data ?? 'data',
    name: v.name,
    labels: v.labels ?? {},
    characteristics: v.characteristics ?? {},
    membership: v.membership ?? {},
    hubs: v.hubs ?? {},
    log: v.log ?? {},
    spec: v.spec,
    specDir: v.specDir,
    secrets: v.secrets
  }
}

export async function readImageConfig (path: string): Promise<ImageConfig> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new OriginError('E_CONFIG_INVALID', `cannot read ${path}: ${errorMessage(err)}`, { file: path })
  }
  return parseImageConfig(text, path)
}
