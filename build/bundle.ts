/**
 * Bundles the node program into one CommonJS file with esbuild (platform node, target
 * node20), from the compiled `dist/` of this checkout. The build's image comes in as the
 * module `origin-image`, which exists only inside the bundle.
 *
 * Optional native helpers stay out: msgpackr falls back to its JavaScript decoder, ws to
 * its own masking, chokidar to node's fs.watch.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { OriginError } from '../node/errors'
import type { EmbeddedImage } from './types'

/** The compiled entry of the executable (executable.ts). */
export const ENTRY = join(__dirname, 'executable.js')
/** The spec evaluator's entry, bundled apart: the node never holds the evaluator's code. */
export const EVALUATOR_ENTRY = join(__dirname, '..', 'node', 'desired', 'evaluator-child.js')
/** The thread `cluster.eval` runs code on (a worker started from source: the executable has no files). */
export const EVAL_THREAD_ENTRY = join(__dirname, '..', 'node', 'control', 'eval-worker.js')

/** Optional packages the node program loads only if present. */
// cpu-features and ssh2's native addon come with dockerode (for ssh:// engines, which origin
// does not use); both are loaded in try/catch, and work without.
const OPTIONAL = ['msgpackr-extract', 'bufferutil', 'utf-8-validate', 'fsevents', 'cpu-features']

/**
 * Packages dockerode requires at its top but uses only for what origin never asks of it:
 * ssh2 for `ssh://` engines (docker-modem), gRPC and protobuf for BuildKit sessions and
 * BuildKit output (origin builds with the classic builder, runtime/images.ts). They were
 * 1.6 MiB of the node's 4.4 MiB bundle, and a bundle's source is held twice while the node
 * runs (the executable's pages it is read from, and the string V8 compiles): stand-ins
 * take their place, which throw, naming the package, if anything ever uses them.
 */
const UNUSED = ['ssh2', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']

export interface BundleResult {
  /** The node program with the image. */
  code: string
  /** The spec evaluator (an asset of the executable, run by it with ORIGIN_ENTRY=spec-evaluator). */
  evaluator: string
  /** The evaluation thread's code (an asset of the executable, started as a worker from source). */
  evalThread: string
  warnings: string[]
}

export async function bundle (image: EmbeddedImage): Promise<BundleResult> {
  for (const entry of [ENTRY, EVALUATOR_ENTRY, EVAL_THREAD_ENTRY]) {
    if (!existsSync(entry)) throw new OriginError('E_START_FAILED', `${entry} is missing: run 'npm run build' first`)
  }
  const [node, evaluator, evalThread] = await Promise.all([ENTRY, EVALUATOR_ENTRY, EVAL_THREAD_ENTRY].map(async (entry) => await bundleOne(entry, image)))
  return { code: node.code, evaluator: evaluator.code, evalThread: evalThread.code, warnings: [...node.warnings, ...evaluator.warnings, ...evalThread.warnings] }
}

export async function bundleOne (entry: string, image: EmbeddedImage): Promise<{ code: string, warnings: string[] }> {
  const esbuild = require('esbuild') as typeof import('esbuild')
  const result = await esbuild.build({
    entryPoints: [entry],
    // TypeScript (9.5 MiB, needed only to transpile) is the executable's asset TYPESCRIPT_ASSET,
    // loaded on first use: in neither bundle, so the node does not parse it at start.
    external: ['typescript'],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    write: false,
    outfile: 'origin-node.js',
    logLevel: 'silent',
    legalComments: 'none',
    // Comments and layout are a third of the bundle, held twice in memory (see UNUSED);
    // names stay, so a stack trace from the executable still names its functions.
    minifyWhitespace: true,
    plugins: [{
      name: 'origin-image',
      setup (b) {
        // An absent optional package throws on require, as when it is not installed; a
        // single executable's own require would print a warning about loading from disk.
        const optional = new RegExp(`^(${OPTIONAL.join('|')})(/|$)|\\.node$`)
        b.onResolve({ filter: optional }, (a) => ({ path: a.path, namespace: 'absent' }))
        b.onLoad({ filter: /.*/, namespace: 'absent' }, (a) => ({ contents: `throw new Error(${JSON.stringify(`${a.path} is not part of origin-node`)})`, loader: 'js' }))
        const unused = new RegExp(`^(${UNUSED.map((p) => p.replace('/', '\\/')).join('|')})(/|$)`)
        b.onResolve({ filter: unused }, (a) => ({ path: a.path, namespace: 'unused' }))
        b.onLoad({ filter: /.*/, namespace: 'unused' }, (a) => ({ contents: standIn(a.path), loader: 'js' }))
        b.onResolve({ filter: /^origin-image$/ }, () => ({ path: 'origin-image', namespace: 'origin-image' }))
        b.onLoad({ filter: /.*/, namespace: 'origin-image' }, () => ({ contents: `module.exports = ${JSON.stringify(image)}`, loader: 'js' }))
      }
    }]
  })
  const warnings = esbuild.formatMessagesSync(result.warnings, { kind: 'warning', color: false })
  return { code: oneByte(result.outputFiles[0].text), warnings }
}

/**
 * A module for package `name` that can be required and read at the top of a module, but
 * throws, naming the package, when anything of it is called or constructed.
 */
export function standIn (name: string): string {
  const message = JSON.stringify(`${name} is not part of origin-node: dockerode needs it only for ssh:// engines and BuildKit, which origin does not use`)
  return `function fail () { throw new Error(${message}) }
module.exports = new Proxy({}, { get: (_, key) => (typeof key === 'symbol' || key === '__esModule' || key === 'then') ? undefined : new Proxy(fail, { construct: fail }) })`
}

/**
 * `code` with every character above U+00FF written as a \u escape. V8 keeps a script's
 * source as one string, two bytes a character if any character needs it: one U+FFFF left
 * in a regular expression (esbuild keeps it) made the node's 4.5 MiB bundle take 9 MiB of
 * heap. The escape means the same in strings, regular expressions, identifiers and comments
 * (only a template literal's raw text, String.raw, would differ).
 */
export function oneByte (code: string): string {
  return code.replace(/[\u0100-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
