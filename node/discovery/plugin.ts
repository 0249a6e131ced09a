/**
 * A discovery plugin: a CommonJS module (a path) exporting a factory of the same shape as
 * the built-in methods, as `discovery` or as the default export:
 *
 *   // peers-from-my-api.js
 *   exports.discovery = (config) => (components) => ({
 *     name: 'my-api', events: new EventEmitter(),
 *     start: async () => {...}, stop: async () => {...}, peers: () => [...]
 *   })
 *
 * The module is loaded when the node is assembled: a missing module or a module without
 * such a factory refuses the start, naming the module.
 */
import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { isAbsolute, resolve } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import type { Discovery, DiscoveryComponents } from './types'

export interface PluginDiscoveryInit {
  /** Path of the module; relative paths are taken from the working directory (image.json's are made absolute from the image dir). */
  module: string
  /** Passed to the module's factory as it is. @default {} */
  config?: Record<string, unknown>
}

type PluginFactory = (config: Record<string, unknown>) => (components: DiscoveryComponents) => Discovery

export function pluginDiscovery (init: PluginDiscoveryInit) {
  return (c: DiscoveryComponents): Discovery => {
    const path = isAbsolute(init.module) ? init.module : resolve(init.module)
    let mod: { discovery?: unknown, default?: unknown }
    try {
      // createRequire: a plain `require` inside a single executable application loads built-in modules only.
      mod = createRequire(path)(path)
    } catch (err) {
      throw new OriginError('E_CONFIG_INVALID', `discovery.plugin.module ${path} cannot be loaded: ${errorMessage(err)}`, { field: 'discovery.plugin.module', file: path })
    }
    const factory = typeof mod.discovery === 'function' ? mod.discovery : typeof mod.default === 'function' ? mod.default : typeof mod === 'function' ? mod : undefined
    if (factory === undefined) {
      throw new OriginError('E_CONFIG_INVALID', `discovery.plugin.module ${path} exports no discovery factory (export "discovery" or a default function)`, { field: 'discovery.plugin.module', file: path })
    }
    const made = (factory as PluginFactory)(init.config ?? {})(c)
    for (const m of ['start', 'stop', 'peers'] as const) {
      if (typeof made?.[m] !== 'function') throw new OriginError('E_CONFIG_INVALID', `discovery plugin ${path} made an object without ${m}()`, { field: 'discovery.plugin.module', file: path })
    }
    return {
      name: typeof made.name === 'string' ? made.name : `plugin ${path}`,
      events: made.events instanceof EventEmitter ? made.events : new EventEmitter(),
      start: async () => await made.start(),
      stop: async () => await made.stop(),
      // A plugin's answer is checked like every other method's: strings, each once.
      peers: () => { const p = made.peers(); return Array.isArray(p) ? [...new Set(p.filter((x): x is string => typeof x === 'string'))] : [] }
    }
  }
}
