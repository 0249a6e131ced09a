/**
 * image.json laid over the defaults: `resolveConfig` checks a parsed image.json (the
 * schema, then the rules a schema cannot say) and returns a `NodeConfig` with every field
 * present. Pure: reading the file is node/config/image.ts's.
 *
 *   resolveConfig(JSON.parse(text))                        // production defaults
 *   resolveConfig(await readImageConfig(path))             // plugin paths made absolute first
 *   resolveConfig(image, 'test image', localConfig())      // fast timings for one machine
 */
import { OriginError, errorMessage } from '../errors'
import { validator } from '../validate'
import { defaultConfig, specDefaults, type NodeConfig, type NodeDefaults, type SpecSettings } from './defaults'
import { imageSchema, type ImageConfig } from './schema'

const checkImage = validator<Partial<ImageConfig>>(imageSchema, 'image.json', 'E_CONFIG_INVALID')

/**
 * `value` checked as image.json: against the schema, then against what the schema cannot
 * say (with `base` filling what it leaves out). E_CONFIG_INVALID naming `source` and the field.
 */
export function checkImageConfig (value: unknown, source = 'image.json', base: NodeDefaults = defaultConfig()): Partial<ImageConfig> {
  let v: Partial<ImageConfig>
  try {
    v = checkImage(value)
  } catch (err) {
    throw new OriginError('E_CONFIG_INVALID', `${source}: ${errorMessage(err).replace(/^image\.json is invalid: /, '')}`, { file: source })
  }
  const m = { ...base.membership, ...defined(v.membership) }
  if (m.suspectAfterMs >= m.deadAfterMs) {
    // Singletons are given up after suspectAfterMs out of touch, and no member is dead
    // sooner: the order is what keeps one from running twice.
    throw new OriginError('E_CONFIG_INVALID', `${source}: /membership: suspectAfterMs (${m.suspectAfterMs}) must be less than deadAfterMs (${m.deadAfterMs})`, { file: source })
  }
  return v
}

/** A parsed image.json (or an `ImageConfig`) validated and laid over `base`: every field present. */
export function resolveConfig (imageJson: unknown, source = 'image.json', base: NodeDefaults = defaultConfig()): NodeConfig {
  const v = checkImageConfig(imageJson, source, base)
  return layOver({ ...base, cluster: v.cluster as string }, v)
}

/**
 * `image` over `base`: a field given replaces the default; a section (membership, hubs,
 * log, health, docker, spec limits) is merged key by key; lists are replaced whole.
 * Unchecked: callers check `image` first.
 */
export function layOver<T extends NodeDefaults> (base: T, image: Partial<ImageConfig>): T {
  const v = defined(image)
  return {
    ...base,
    ...v,
    discovery: v.discovery ?? base.discovery,
    membership: { ...base.membership, ...defined(v.membership) },
    hubs: { ...base.hubs, ...defined(v.hubs) },
    log: { ...base.log, ...defined(v.log) },
    spec: v.spec === undefined ? base.spec : resolveSpec(v.spec, base.spec),
    docker: { ...base.docker, ...defined(v.docker) },
    layers: v.layers ?? base.layers,
    health: { ...base.health, ...defined(v.health) }
  } as T
}

function resolveSpec (spec: NonNullable<ImageConfig['spec']>, base: SpecSettings | undefined): SpecSettings {
  const s = defined(spec)
  const limits = { ...(base?.limits ?? specDefaults.limits), ...defined(s.limits) }
  // tsTimeoutMs is limits.fileMs's older name, and wins as the desired layer has it win.
  if (s.tsTimeoutMs !== undefined) limits.fileMs = s.tsTimeoutMs
  return { pollIntervalMs: base?.pollIntervalMs ?? specDefaults.pollIntervalMs, ...s, url: spec.url, limits }
}

/** `o` without its undefined fields, so spreading it never hides a default. */
function defined<T extends object> (o: T | undefined): Partial<T> {
  if (o === undefined) return {}
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<T>
}
