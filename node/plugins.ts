/**
 * Plugins: the layer implementations image.json's `layers` names, loaded when the node is
 * assembled. `layers: { "<layer>": { "use": "<module>", "config": {...} } }`:
 *
 *   "use": "transport-memory"          a plugin shipped in the project's plugins/
 *   "use": "plugins/my-hubs.js"        a path, relative to the image dir (or absolute)
 *   "use": "spec:my-hubs"              the spec repo's plugins/my-hubs/ (index.js) or plugins/my-hubs.js,
 *                                      only with spec.allowedSigners set and from a commit they signed
 *
 * A plugin module exports a factory of the layer's own shape, named after the layer
 * (`exports.discovery = (init) => (components) => ...`) or as the default export, and
 * optionally `configSchema`, a JSON Schema the `config` must pass. The factory is given the
 * init the node would give the built-in layer with `config` laid over it, so a plugin takes
 * the same options as the default plus its own. Everything that can go wrong (no module,
 * no factory, a config its schema refuses, a factory that throws or makes something without
 * start()/stop()) fails the assembly with E_CONFIG_INVALID naming the layer.
 *
 * @example
 *   const chosen = loadLayerPlugins(config.layers)      // { transport: { factory, use }, ... }
 *   const make = pluginFactory(chosen, 'transport', webSocketTransport)
 *   const transport = build('transport', () => make({ listen })(components))
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { OriginError, errorMessage } from './errors'
import { GitStore } from './git/store'
import type { Logger } from './log'
import { verifyCommitSignature } from './desired/signature'
import { validator } from './validate'

/**
 * The layers image.json may name: every layer assembly.ts makes from a swappable factory, and
 * `lease`, which has no built-in default (the `lease` downing strategy's engine, e.g.
 * lease-etcd; node/membership/lease.ts).
 */
export const REPLACEABLE_LAYERS = ['transport', 'discovery', 'membership', 'hubs', 'spec', 'supervisor', 'lease'] as const
export type LayerName = typeof REPLACEABLE_LAYERS[number]

export interface LayerChoice {
  /** A plugin name under plugins/ (`transport-memory`), or a module path. */
  use: string
  /** The plugin's own settings, checked against its `configSchema`. @default {} */
  config?: Record<string, unknown>
}

export type LayerChoices = Partial<Record<LayerName, LayerChoice>>

/** A plugin name: what is looked up under plugins/ rather than taken as a path. */
export const PLUGIN_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/
/** `use` naming a plugin of the spec repo: `spec:<name>`. */
export const SPEC_PLUGIN = /^spec:([a-z0-9][a-z0-9-]{0,62})$/

/** Whether `use` is a module path (to be taken from the image dir when relative), not a name. */
export function isPluginPath (use: string): boolean {
  return !PLUGIN_NAME.test(use) && !use.startsWith('spec:')
}

type AnyFactory = (init: any) => (components: any) => any

export interface LoadedPlugin {
  layer: LayerName
  use: string
  /** The file the module was loaded from. */
  file: string
  /** The plugin's factory with its checked `config` laid over each init it is given. */
  factory: AnyFactory
}

// Plugins shipped with origin, required by literal paths so a bundler (origin build) takes them in.
const SHIPPED: Record<string, () => unknown> = {
  'transport-memory': () => require('../plugins/transport-memory'),
  'discovery-file': () => require('../plugins/discovery-file'),
  'lease-etcd': () => require('../plugins/lease-etcd')
}

/** Where the project's plugins/ is: next to node/ in the source tree and in dist/. */
export const projectPluginsDir = resolve(__dirname, '..', 'plugins')

function refuse (layer: string, use: string, message: string, data: Record<string, unknown> = {}): never {
  throw new OriginError('E_CONFIG_INVALID', `layer ${layer} ("${use}"): ${message}`, { layer, use, field: `layers.${layer}`, ...data })
}

/** The module `use` names, loaded; relative paths are taken from `baseDir`. */
function loadModule (layer: LayerName, use: string, baseDir: string): { mod: any, file: string } {
  if (use.startsWith('spec:')) refuse(layer, use, 'a spec repo plugin is fetched first (fetchSpecPlugins), and its name must be letters, digits and "-"')
  if (PLUGIN_NAME.test(use)) {
    const shipped = SHIPPED[use]
    const dir = join(projectPluginsDir, use)
    if (shipped !== undefined) {
      try { return { mod: shipped(), file: dir } } catch (err) { refuse(layer, use, `plugin cannot be loaded: ${errorMessage(err)}`) }
    }
    if (!existsSync(dir)) refuse(layer, use, `no plugin named "${use}" in ${projectPluginsDir}`)
    return { mod: requireFrom(layer, use, dir), file: dir }
  }
  const file = isAbsolute(use) ? use : resolve(baseDir, use)
  return { mod: requireFrom(layer, use, file), file }
}

function requireFrom (layer: LayerName, use: string, file: string): unknown {
  try {
    // createRequire: a plain `require` inside a single executable application loads built-in modules only.
    return createRequire(file)(file)
  } catch (err) {
    refuse(layer, use, `module ${file} cannot be loaded: ${errorMessage(err)}`, { file })
  }
}

/** One layer's plugin, loaded and its config checked. */
export function loadLayerPlugin (layer: LayerName, choice: LayerChoice, baseDir = process.cwd()): LoadedPlugin {
  const { use } = choice
  const { mod, file } = loadModule(layer, use, baseDir)
  const exported = mod?.[layer] ?? mod?.default ?? mod
  if (typeof exported !== 'function') {
    refuse(layer, use, `${file} exports no ${layer} factory (export "${layer}" or a default function)`, { file })
  }
  const config = choice.config ?? {}
  const schema = mod?.configSchema
  if (schema !== undefined) {
    let check
    try {
      check = validator<Record<string, unknown>>(schema, `layers.${layer}.config`, 'E_CONFIG_INVALID')
    } catch (err) {
      refuse(layer, use, `the plugin's configSchema is not a usable JSON Schema: ${errorMessage(err)}`, { file })
    }
    try {
      check(config)
    } catch (err) {
      refuse(layer, use, errorMessage(err), { file, ...(err instanceof OriginError ? err.data : {}) })
    }
  }
  const factory = exported as AnyFactory
  return { layer, use, file, factory: (init: Record<string, unknown>) => factory({ ...init, ...config }) }
}

/** Every layer `choices` names, loaded. Relative paths are taken from `baseDir` (the image dir). */
export function loadLayerPlugins (choices: LayerChoices | undefined, baseDir = process.cwd()): Partial<Record<LayerName, LoadedPlugin>> {
  const out: Partial<Record<LayerName, LoadedPlugin>> = {}
  for (const [layer, choice] of Object.entries(choices ?? {}) as Array<[LayerName, LayerChoice]>) {
    if (!REPLACEABLE_LAYERS.includes(layer)) refuse(layer, choice.use, `not a layer a plugin can replace (${REPLACEABLE_LAYERS.join(', ')})`)
    out[layer] = loadLayerPlugin(layer, choice, baseDir)
  }
  return out
}

/**
 * Make one layer: `make()` calls its factory with its components. A throw (a dependency
 * the plugin needs and was not given) or an object without start()/stop() is refused
 * naming the layer.
 */
export function assemble<T> (layer: string, use: string, make: () => T): T {
  let made: any
  try {
    made = make()
  } catch (err) {
    if (err instanceof OriginError && err.data.layer === layer) throw err
    refuse(layer, use, `cannot be assembled: ${errorMessage(err)}`)
  }
  for (const m of ['start', 'stop']) {
    if (typeof made?.[m] !== 'function') refuse(layer, use, `the factory made an object without ${m}()`)
  }
  return made as T
}

/** The spec repo as image.json gives it. */
export interface SpecRepo { url: string, ref?: string, token?: string, allowedSigners?: string[] }

/**
 * `choices` with each `spec:<name>` replaced by the path of that plugin as the spec repo's
 * head commit has it, written under `dataDir/spec-plugins/<commit>/`. Only with allowed
 * signers, and only from a commit one of them signed: a plugin runs with the node's rights.
 * When the remote cannot be reached, the last commit fetched (verified again) is used.
 */
export async function fetchSpecPlugins (choices: LayerChoices | undefined, spec: SpecRepo | undefined, dataDir: string, c: { log: Logger, nodeId: string }): Promise<LayerChoices | undefined> {
  const wanted = Object.entries(choices ?? {}).filter(([, ch]) => ch.use.startsWith('spec:')) as Array<[LayerName, LayerChoice]>
  if (wanted.length === 0) return choices
  for (const [layer, ch] of wanted) {
    if (!SPEC_PLUGIN.test(ch.use)) refuse(layer, ch.use, 'a spec repo plugin is named spec:<name>, the name of letters, digits and "-"')
    if (spec === undefined) refuse(layer, ch.use, 'a plugin from the spec repo needs a git spec repo (image.json spec.url)')
    if ((spec.allowedSigners ?? []).length === 0) refuse(layer, ch.use, 'plugins load from the spec repo only from signed commits: set spec.allowedSigners')
  }
  const repo = spec as SpecRepo
  const signers = repo.allowedSigners as string[]
  const store = new GitStore(join(dataDir, 'spec-plugins.git'))
  const lastFile = join(dataDir, 'spec-plugins', 'last')
  let commit: string
  const [firstLayer, first] = wanted[0]
  try {
    await store.init()
    const remote = { url: repo.url, ref: repo.ref, token: repo.token, userAgent: `origin-node/${c.nodeId}` }
    const head = await store.remoteHead(remote)
    if (!await store.has(head.oid)) await store.fetch(remote, head.ref)
    commit = head.oid
  } catch (err) {
    const last = await readFile(lastFile, 'utf8').then((s) => s.trim(), () => '')
    if (last === '' || !await store.has(last)) refuse(firstLayer, first.use, `cannot fetch the spec repo ${repo.url} for its plugins, and none was fetched before: ${errorMessage(err)}`)
    c.log.warn(`cannot fetch the spec repo ${repo.url} for its plugins (${errorMessage(err)}); using ${last.slice(0, 12)}, fetched before`)
    commit = last
  }
  const check = verifyCommitSignature(await store.rawCommit(commit), signers)
  if (!check.ok) refuse(firstLayer, first.use, `the spec repo's commit ${commit.slice(0, 12)} is refused: ${check.reason}`, { commit })
  const files = await store.files(commit)
  const out: LayerChoices = { ...choices }
  const root = join(dataDir, 'spec-plugins', commit)
  for (const [layer, ch] of wanted) {
    const name = (SPEC_PLUGIN.exec(ch.use) as RegExpExecArray)[1]
    const mine = [...files].filter(([path]) => path.startsWith(`plugins/${name}/`) || path === `plugins/${name}.js`)
    if (mine.length === 0) refuse(layer, ch.use, `the spec repo's commit ${commit.slice(0, 12)} has no plugins/${name}/ or plugins/${name}.js`, { commit })
    for (const [path, data] of mine) {
      await mkdir(dirname(join(root, path)), { recursive: true })
      await writeFile(join(root, path), data)
    }
    const dir = join(root, 'plugins', name)
    out[layer] = { ...ch, use: existsSync(dir) ? dir : `${dir}.js` }
    c.log.info(`layer ${layer}: plugin ${name} from the spec repo's commit ${commit.slice(0, 12)}, signed by ${check.signer}`)
  }
  await writeFile(lastFile, commit + '\n')
  return out
}
