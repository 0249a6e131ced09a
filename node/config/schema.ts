/**
 * image.json: a node image's configuration as data, a contract (scripts outside origin
 * write it, so a field is never renamed or removed). `imageSchema` validates it with ajv; a
 * bad one is refused with a message naming the field. Command-line flags override it;
 * node/config/resolve.ts lays it over the defaults (node/config/defaults.ts).
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
import type { SpecLimits } from '../desired/limits'
import { REPLACEABLE_LAYERS, type LayerChoices } from '../plugins'
import { healthSchema, type HealthSettings } from '../health/config'
import { membershipSchema, type MembershipSettings } from '../membership/config'
import { nodeIdSchema, RANK_KEYS, type RankKey } from '../vocabulary'

/** image.json validated, its top-level fields filled (`parseImageConfig`); sections as written. */
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
  membership: MembershipSettings
  hubs: { count?: number, memoryMargin?: number, ranking?: RankKey[] }
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
    name: nodeIdSchema,
    labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 253 }, maxProperties: 64 },
    characteristics: {
      type: 'object',
      additionalProperties: false,
      properties: { cpus: { type: 'integer', minimum: 1, maximum: 4096 }, memoryMb: { type: 'integer', minimum: 1 } }
    },
    membership: membershipSchema,
    hubs: {
      type: 'object',
      additionalProperties: false,
      properties: {
        count: { type: 'integer', minimum: 1, maximum: 15 },
        memoryMargin: { type: 'number', minimum: 0, maximum: 10 },
        ranking: { type: 'array', items: { enum: RANK_KEYS }, uniqueItems: true, minItems: 1 }
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
