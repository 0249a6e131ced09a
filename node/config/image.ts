/**
 * Reading image.json: `parseImageConfig` checks its text (node/config/schema.ts has the
 * shape) and fills the top-level fields; `readImageConfig` reads the file and makes its
 * relative plugin paths absolute. `resolveConfig` (node/config/resolve.ts) turns either
 * into a `NodeConfig` with every default filled in.
 */
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import { isPluginPath } from '../plugins'
import { defaultConfig } from './defaults'
import { checkImageConfig } from './resolve'
import type { ImageConfig } from './schema'

export { imageSchema, type ImageConfig } from './schema'
export { applyEnvironment, ENVIRONMENT_OVERRIDES, type EnvironmentVariable } from './environment'

/** Parse and validate an image.json text, filling the top-level defaults; sections stay as written. */
export function parseImageConfig (text: string, source = 'image.json'): ImageConfig {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new OriginError('E_CONFIG_INVALID', `${source} is not valid JSON: ${errorMessage(err)}`, { file: source })
  }
  const d = defaultConfig()
  const v = checkImageConfig(raw, source, d)
  return {
    cluster: v.cluster as string,
    listen: v.listen ?? d.listen,
    advertise: v.advertise,
    seeds: v.seeds ?? d.seeds,
    ...(v.discovery === undefined ? {} : { discovery: v.discovery }),
    data: v.data ?? d.data,
    name: v.name,
    labels: v.labels ?? d.labels,
    characteristics: v.characteristics ?? d.characteristics,
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
