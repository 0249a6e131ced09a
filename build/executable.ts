/**
 * The program inside `origin-node`, the single executable `origin build` makes: esbuild
 * bundles this file with the whole node program, and the build's `image.json`, keys and
 * secrets come in as the module `origin-image` (see bundle.ts). Run with no arguments it
 * starts that node; deploy-time facts come from the environment (ORIGIN_LISTEN,
 * ORIGIN_ADVERTISE, ORIGIN_DATA, ORIGIN_SEEDS; ORIGIN_KEYS for keys kept outside).
 *
 * The same executable is also every child entry the node starts of itself: with
 * ORIGIN_ENTRY=spec-evaluator it is the spec evaluator (node/launch/self.ts).
 */
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import vm from 'node:vm'
import { runNode } from '../node/cli/node'
import { useEvalThreadCode } from '../node/control/eval'
import { applyEnvironment, ENVIRONMENT_OVERRIDES, parseImageConfig } from '../node/config/image'
import { errorMessage, OriginError } from '../node/errors'
import { certificateExpiry } from '../node/keys/expiry'
import { holdKeys } from '../node/keys/image'
import { useTypescript } from '../node/typescript'
import { ENTRY_VARIABLE } from '../node/launch/self'
import { typescriptFromAsset } from './typescript-asset'
import { EVAL_THREAD_ASSET, EVALUATOR_ASSET, type EmbeddedImage } from './types'

// Neither bundle holds TypeScript (bundle.ts): whoever transpiles first loads it from its asset.
useTypescript(typescriptFromAsset)
// The thread an operator's evaluation runs on comes from an asset, as the executable has no files.
useEvalThreadCode(() => seaAsset(EVAL_THREAD_ASSET))

function seaAsset (name: string): string {
  return (require('node:sea') as { getAsset: (name: string, encoding: string) => string }).getAsset(name, 'utf8')
}

/** Where the held keys appear to be, in messages: `origin-node:keys/node.crt`. */
const HELD_KEYS = 'origin-node:keys'

function embedded (): EmbeddedImage {
  // Resolved by the bundler to this build's image; there is no such package on disk.
  return require('origin-image') as EmbeddedImage
}

const usage = `usage: origin-node            start this image's node (no arguments)
       origin-node --info     print what the image holds: cluster, certificate serial and expiry

A node image made by 'origin build'. Its image.json and keys are inside this file; it
needs nothing else on the machine. The first node whose seeds do not answer originates
the cluster; the others join it. SIGTERM or Ctrl-C leaves the cluster gracefully.

Environment (deploy-time facts that differ per machine; each overrides image.json):
  ORIGIN_LISTEN     HOST:PORT to listen on (mutual TLS)
  ORIGIN_ADVERTISE  HOST:PORT other nodes dial
  ORIGIN_DATA       data directory (node id, node.log); default: image.json's, beside this file
  ORIGIN_SEEDS      HOST:PORT list, separated by commas or spaces
  ORIGIN_KEYS       a directory with ca.crt node.crt node.key to use instead of the keys inside
  ORIGIN_LOG_LEVEL  debug | info | warn | error`

function info (image: EmbeddedImage): string {
  const b = image.build
  const expiry = certificateExpiry({ serial: b.serial, notAfter: new Date(b.notAfter) }, Date.now())
  return [
    `cluster      ${b.cluster}`,
    `certificate  ${b.serial} (${b.certName}), ${expiry.message.replace(/^certificate \S+ /, '')}`,
    `keys         ${image.keys === undefined ? 'outside (ORIGIN_KEYS)' : 'inside'}`,
    `secrets      ${Object.keys(image.secrets).length === 0 ? 'none' : Object.keys(image.secrets).sort().join(', ')}`,
    `built        ${b.builtAt} with origin ${b.origin}, node ${process.version}`,
    `image.json   ${image.imageJson.trim().replace(/\n\s*/g, ' ')}`
  ].join('\n')
}

/**
 * The image's secret files, written where the supervisor reads them: a private folder of
 * the data dir, emptied and rewritten at every start so it always matches this image.
 */
async function writeSecrets (secrets: Record<string, string>, dataDir: string): Promise<string> {
  const dir = join(dataDir, 'image-secrets')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true })
  for (const [name, base64] of Object.entries(secrets)) await writeFile(join(dir, name), Buffer.from(base64, 'base64'), { mode: 0o600 })
  return dir
}

async function main (argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) { console.log(usage); return 0 }
  const image = embedded()
  if (argv.length === 1 && argv[0] === '--info') { console.log(info(image)); return 0 }
  if (argv.length > 0) {
    console.error(`origin-node: takes no arguments, got "${argv.join(' ')}": settings that differ per machine come from ${Object.keys(ENVIRONMENT_OVERRIDES).join(', ')}\n\n${usage}`)
    return 2
  }
  const home = dirname(process.execPath)
  const parsed = parseImageConfig(image.imageJson, 'image.json (inside origin-node)')
  const { config, applied } = applyEnvironment(parsed, process.env)
  // image.json paths are relative to the image (the folder of this file); variables to the working directory.
  config.data = resolve(applied.includes('ORIGIN_DATA') ? process.cwd() : home, config.data)
  if (config.specDir !== undefined) config.specDir = resolve(home, config.specDir)
  config.secrets = Object.keys(image.secrets).length > 0
    ? await writeSecrets(image.secrets, config.data)
    : resolve(home, config.secrets ?? 'secrets')
  let keys: string
  const outside = process.env.ORIGIN_KEYS
  if (outside !== undefined && outside !== '') {
    keys = resolve(outside)
  } else if (image.keys !== undefined) {
    holdKeys(HELD_KEYS, image.keys)
    keys = HELD_KEYS
  } else {
    throw new OriginError('E_KEY_MISSING', 'this image was built with --keys-outside: set ORIGIN_KEYS to a directory holding ca.crt, node.crt and node.key')
  }
  return await runNode({ config, keys })
}

/**
 * The spec evaluator, bundled apart and carried as an asset, so the node process holds none
 * of its code. It runs on load and reads requests on stdin; it needs only node's builtins,
 * which is all a single executable's require loads, and TypeScript, which its own copy of
 * the sandbox requires and which comes from the TypeScript asset instead.
 */
function runEvaluator (): void {
  const code = seaAsset(EVALUATOR_ASSET)
  const wrapper = vm.runInThisContext(`(function (exports, require, module, __filename, __dirname) {${code}\n})`, { filename: EVALUATOR_ASSET }) as (...a: unknown[]) => void
  const module = { exports: {} }
  let ts: unknown
  const evaluatorRequire = (id: string): unknown => id === 'typescript' ? (ts ??= typescriptFromAsset()) : require(id)
  wrapper(module.exports, evaluatorRequire, module, join(dirname(process.execPath), EVALUATOR_ASSET), dirname(process.execPath))
}

if (process.env[ENTRY_VARIABLE] === 'spec-evaluator') {
  runEvaluator()
} else if (process.env[ENTRY_VARIABLE] !== undefined && process.env[ENTRY_VARIABLE] !== '') {
  console.error(`origin-node: unknown ${ENTRY_VARIABLE} "${process.env[ENTRY_VARIABLE]}"`)
  process.exitCode = 2
} else {
  // In a single executable argv[1] repeats the executable; the arguments follow it.
  main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err) => {
    console.error(`origin-node: ${errorMessage(err)}`)
    process.exitCode = 1
  })
}
