/**
 * What an `origin-node` executable carries besides the program: the build's image.json,
 * keys and secrets, and facts about the build. The builder writes it as the module
 * `origin-image`; the executable reads it (executable.ts).
 */
import type { NodeKeyFile } from '../node/keys/image'

export interface BuildFacts {
  cluster: string
  /** The serial of this build's node certificate (normalizeSerial form, as revokedSerials takes it). */
  serial: string
  /** The certificate's CN. */
  certName: string
  /** ISO 8601. */
  notAfter: string
  /** ISO 8601. */
  builtAt: string
  /** origin's version (package.json). */
  origin: string
}

export interface EmbeddedImage {
  format: 1
  /** image.json as written by the team (defaults are filled at start, as for an image directory). */
  imageJson: string
  /** The node's keys; absent when built with --keys-outside (the node reads ORIGIN_KEYS). */
  keys?: Record<NodeKeyFile, string>
  /** Secret files for services, name -> base64 content. */
  secrets: Record<string, string>
  build: BuildFacts
}

/** The spec evaluator's bundle, an asset of the executable (`require('node:sea').getAsset`). */
export const EVALUATOR_ASSET = 'spec-evaluator.js'

/** The thread operators' evaluations run on (node/control/eval-worker.ts), bundled apart: an asset, as the executable carries no files. */
export const EVAL_THREAD_ASSET = 'eval-worker.js'

/** TypeScript's lib/typescript.js, an asset of the executable, kept out of both bundles (typescript-asset.ts). */
export const TYPESCRIPT_ASSET = 'typescript.js'
