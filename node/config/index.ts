/**
 * The node's configuration: image.json's shape (schema.ts), reading it (image.ts), the
 * environment's overrides (environment.ts), the defaults (defaults.ts, local.ts) and one
 * resolved `NodeConfig` (resolve.ts).
 *
 *   const config = resolveConfig(await readImageConfig('image/image.json'))
 *   const { config: deployed } = applyEnvironment(config, process.env)
 */
export { imageSchema, type ImageConfig } from './schema'
export { parseImageConfig, readImageConfig } from './image'
export { applyEnvironment, ENVIRONMENT_OVERRIDES, type EnvironmentVariable } from './environment'
export { defaultConfig, logDefaults, specDefaults, type LogLevel, type LogSettings, type NodeConfig, type NodeDefaults, type SpecSettings } from './defaults'
export { localConfig, localSettings } from './local'
export { checkImageConfig, layOver, resolveConfig } from './resolve'
