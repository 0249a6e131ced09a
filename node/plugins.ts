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
 *   const chosen = loadLayerPlugins(config.layers)      // { transport: { factory, use, needs, file }, ... }
 *   const transport = assemble('transport', chosen.transport.use, () => chosen.transport.factory({ listen })(components),
 *     { components, needs: chosen.transport.needs, shape: LAYER_SHAPE.transport })
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
 * The layers image.json may name: every layer assembly.ts makes from a factory, in the order
 * it makes them, and `lease`, which has no built-in default (the `lease` downing strategy's
 * engine, e.g. lease-etcd; node/membership/lease.ts). `spec` is the old name of `desired`,
 * still accepted: image.json files in use name it (LAYER_ALIASES).
 */
export const LAYER_NAMES = ['transport', 'discovery', 'lease', 'membership', 'hubs', 'desired', 'scheduler', 'runtime', 'api', 'state', 'proxy', 'supervisor', 'journal', 'health', 'control'] as const
export type LayerName = typeof LAYER_NAMES[number]
/** Old names image.json may still use for a layer. */
export const LAYER_ALIASES = { spec: 'desired' } as const satisfies Record<string, LayerName>
/** Every key image.json's `layers` accepts: the layers and their old names. */
export const REPLACEABLE_LAYERS = [...LAYER_NAMES, ...Object.keys(LAYER_ALIASES) as Array<keyof typeof LAYER_ALIASES>] as const
export type LayerKey = typeof REPLACEABLE_LAYERS[number]

/**
 * What a layer's factory must make, beyond being an object: most layers are components the
 * system starts and stops; the scheduler is a pure function, and the runtime layer is a set
 * of runtime factories by name (node/runtime/contract.ts RuntimeSet), any of which it may
 * leave to the built-in.
 */
/** The runtimes the runtime layer may name: how a service's `run.command` and `run.image` start. */
export const RUNTIME_NAMES = ['process', 'container']

const LIFECYCLE = ['start', 'stop']
export const LAYER_SHAPE: Record<LayerName, readonly string[]> = {
  transport: LIFECYCLE,
  discovery: [...LIFECYCLE, 'peers'],
  lease: [...LIFECYCLE, 'acquire', 'read', 'renew', 'release'],
  membership: LIFECYCLE,
  hubs: LIFECYCLE,
  desired: LIFECYCLE,
  scheduler: ['schedule'],
  runtime: [],
  api: LIFECYCLE,
  state: LIFECYCLE,
  proxy: LIFECYCLE,
  supervisor: LIFECYCLE,
  journal: LIFECYCLE,
  health: LIFECYCLE,
  control: LIFECYCLE
}

export interface LayerChoice {
  /** A plugin name under plugins/ (`transport-memory`), or a module path. */
  use: string
  /** The plugin's own settings, checked against its `configSchema`. @default {} */
  config?: Record<string, unknown>
}

export type LayerChoices = Partial<Record<LayerKey, LayerChoice>>

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
  /** The components the plugin says it needs (its module's `dependencies`), checked when it is made. */
  needs: string[]
}

// Plugins shipped with origin, required by literal paths so a bundler (origin build) takes them in.
const SHIPPED: Record<string, () => unknown> = {
  'transport-memory': () => require('../plugins/transport-memory'),
  'discovery-file': () => require('../plugins/discovery-file'),
  'lease-etcd': () => require('../plugins/lease-etcd'),
  'lease-redis': () => require('../plugins/lease-redis')
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
export function loadLayerPlugin (key: LayerKey, choice: LayerChoice, baseDir = process.cwd()): LoadedPlugin {
  const layer = layerNamed(key)
  const { use } = choice
  const { mod, file } = loadModule(layer, use, baseDir)
  const oldName = Object.entries(LAYER_ALIASES).find(([, to]) => to === layer)?.[0] ?? layer
  const exported = mod?.[layer] ?? mod?.[oldName] ?? mod?.default ?? mod
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
  const needs: unknown = mod?.dependencies ?? []
  if (!Array.isArray(needs) || !needs.every((n) => typeof n === 'string')) refuse(layer, use, `${file} exports "dependencies" that is not a list of component names`, { file })
  const factory = exported as AnyFactory
  return { layer, use, file, needs, factory: (init: Record<string, unknown>) => factory({ ...init, ...config }) }
}

/** Every layer `choices` names, loaded, under its own name (`spec` is `desired`). Relative paths are taken from `baseDir` (the image dir). */
export function loadLayerPlugins (choices: LayerChoices | undefined, baseDir = process.cwd()): Partial<Record<LayerName, LoadedPlugin>> {
  const out: Partial<Record<LayerName, LoadedPlugin>> = {}
  for (const [key, choice] of Object.entries(choices ?? {}) as Array<[LayerKey, LayerChoice]>) {
    if (!REPLACEABLE_LAYERS.includes(key)) refuse(key, choice.use, `not a layer a plugin can replace (${LAYER_NAMES.join(', ')})`)
    const layer = layerNamed(key)
    if (out[layer] !== undefined) refuse(layer, choice.use, `named twice in layers, as ${layer} and as its old name ${key}; keep one`)
    out[layer] = loadLayerPlugin(layer, choice, baseDir)
  }
  return out
}

/** The layer an image.json key names: itself, or the layer an old name stands for. */
export function layerNamed (key: LayerKey): LayerName {
  return (LAYER_ALIASES as Record<string, LayerName>)[key] ?? key
}

export interface AssembleChecks {
  /** What the factory was given: `needs` are looked up in it. */
  components?: object
  /** Components the layer cannot work without (a plugin's `dependencies`). */
  needs?: readonly string[]
  /** Methods the made layer must have. @default ['start', 'stop'] */
  shape?: readonly string[]
}

/**
 * Make one layer: `make()` calls its factory with its components. A dependency it names
 * that the node does not give it, a throw (a dependency it found missing itself) or an
 * object without the layer's methods is refused naming the layer, so a node never starts
 * half-wired.
 */
export function assemble<T> (layer: string, use: string, make: () => T, checks: AssembleChecks = {}): T {
  const given = (checks.components ?? {}) as Record<string, unknown>
  for (const need of checks.needs ?? []) {
    if (given[need] === undefined) {
      const has = Object.keys(given).filter((k) => given[k] !== undefined)
      refuse(layer, use, `needs ${need}, which this node does not give it (it gives: ${has.join(', ')})`, { missing: need })
    }
  }
  let made: any
  try {
    made = make()
  } catch (err) {
    if (err instanceof OriginError && err.data.layer === layer) throw err
    refuse(layer, use, `cannot be assembled: ${errorMessage(err)}`)
  }
  if (made === null || typeof made !== 'object') refuse(layer, use, `the factory made ${made === null ? 'null' : typeof made}, not an object`)
  for (const m of checks.shape ?? ['start', 'stop']) {
    if (typeof made[m] !== 'function') refuse(layer, use, `the factory made an object without ${m}()`)
  }
  if (layer === 'runtime') {
    for (const [name, f] of Object.entries(made)) {
      if (!RUNTIME_NAMES.includes(name)) refuse(layer, use, `the factory made a runtime named "${name}"; runtimes are ${RUNTIME_NAMES.join(', ')}`)
      if (typeof f !== 'function') refuse(layer, use, `the factory's runtime "${name}" is not a factory function`)
    }
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
  const wanted = Object.entries(choices ?? {}).filter(([, ch]) => ch.use.startsWith('spec:')) as Array<[LayerKey, LayerChoice]>
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
