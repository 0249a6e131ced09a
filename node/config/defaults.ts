/**
 * The node's configuration model: `NodeConfig` is image.json resolved, every field present,
 * and `defaultConfig()` is what a node runs with where image.json says nothing, like
 * memberlist's DefaultLANConfig. Each default is written once: the node's own here, next to
 * the trade-off it controls; a layer's in its config file beside its documented `*Init`
 * (membership, health, hubs, spec limits), read from there. README.md's settings tables are
 * checked against this (test/unit/config-readme.test.ts).
 *
 *   const config = resolveConfig(JSON.parse(text))   // node/config/resolve.ts
 *   config.membership.deadAfterMs                    // 2000 unless image.json says otherwise
 */
import { defaultSpecLimits, type SpecLimits } from '../desired/limits'
import { healthDefaults, type HealthSettings } from '../health/config'
import { defaultHubPolicy, type HubPolicy } from '../hubs/types'
import { membershipDefaults, MEMBERSHIP_SETTINGS, type MembershipSettings } from '../membership/config'
import type { LayerChoices } from '../plugins'
import type { ImageConfig } from './schema'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/** Node and instance logs: what is written, and how much of it is kept on disk. */
export interface LogSettings {
  level: LogLevel
  maxBytes: number
  keep: number
}

/** The spec repo, with what image.json leaves out filled in. */
export interface SpecSettings {
  url: string
  ref?: string
  token?: string
  pollIntervalMs: number
  webhookSecret?: string
  allowedSigners?: string[]
  /** Sets `limits.fileMs` (its older name); kept as given so an image's choice shows. */
  tsTimeoutMs?: number
  limits: SpecLimits
}

/**
 * image.json resolved: every field present, defaults filled in. Optional parts stay
 * `undefined` when image.json leaves them out and there is no default: `advertise` (the
 * listen address), `name` (generated on first start), `spec` and `specDir` (no desired
 * state), `secrets` (none). Assignable to `ImageConfig`, so code that takes an image's
 * config takes a resolved one.
 */
export interface NodeConfig extends ImageConfig {
  advertise: string | undefined
  discovery: NonNullable<ImageConfig['discovery']>
  name: string | undefined
  membership: Required<MembershipSettings>
  hubs: HubPolicy
  log: LogSettings
  spec: SpecSettings | undefined
  specDir: string | undefined
  secrets: string | undefined
  docker: { socket?: string }
  layers: LayerChoices
  health: Required<HealthSettings>
}

/** What every node has before image.json is read: all of `NodeConfig` but the cluster's name. */
export type NodeDefaults = Omit<NodeConfig, 'cluster'>

/** The node's own defaults, each with the trade-off it controls. */
const node = {
  /** Every interface, port 7400: one port for the mesh, operators and webhooks. */
  listen: '0.0.0.0:7400',
  /** Relative to the image dir: the image carries its node id, logs and state with it. */
  data: 'data'
}

export const logDefaults: Readonly<LogSettings> = {
  /** `debug` explains every decision, for lines a busy node writes many of a second. */
  level: 'info',
  /**
   * Size at which a node or instance log rotates. Larger keeps more history in one file;
   * each log takes up to (1 + `keep`) × this on disk. 10 MiB.
   */
  maxBytes: 10 * 1024 * 1024,
  /** Rotated parts kept per log: more history for more disk. */
  keep: 5
}

/** What a given `spec` section is filled with. */
export const specDefaults: Readonly<Pick<SpecSettings, 'pollIntervalMs' | 'limits'>> = {
  /**
   * How often hubs fetch the spec repo. Shorter applies a push sooner for one small
   * request per hub each time; a webhook (`webhookSecret`) applies at once whatever this is.
   */
  pollIntervalMs: 5000,
  /** What one commit may cost a node to read: node/desired/limits.ts, each with its trade-off. */
  limits: defaultSpecLimits
}

function pick<T extends object, K extends keyof T> (o: T, keys: readonly K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>
}

/** The production defaults. A new object each call: callers may change it. */
export function defaultConfig (): NodeDefaults {
  return {
    listen: node.listen,
    advertise: undefined,
    seeds: [],
    discovery: {},
    data: node.data,
    name: undefined,
    labels: {},
    characteristics: {},
    membership: pick(membershipDefaults, MEMBERSHIP_SETTINGS),
    hubs: { ...defaultHubPolicy, ranking: [...defaultHubPolicy.ranking] },
    log: { ...logDefaults },
    spec: undefined,
    specDir: undefined,
    secrets: undefined,
    docker: {},
    layers: {},
    health: { ...healthDefaults }
  }
}
