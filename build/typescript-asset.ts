/**
 * TypeScript inside an `origin-node` executable: shipped once, as an asset, instead of in
 * the node's bundle, so a node that never transpiles (most of them: specs are evaluated by
 * a child) never parses its 9.5 MiB. The node and its spec evaluator both load it from
 * here on first use (node/typescript.ts `useTypescript`).
 */
import { dirname, join } from 'node:path'
import vm from 'node:vm'
import type * as TS from 'typescript'
import { TYPESCRIPT_ASSET } from './types'

/** The asset's text compiled as the CommonJS module it is; it needs only node's builtins. */
export function typescriptFromAsset (): typeof TS {
  const sea = require('node:sea') as { getAsset: (name: string, encoding: string) => string }
  const file = join(dirname(process.execPath), TYPESCRIPT_ASSET)
  const module = { exports: {} as unknown }
  const wrapper = vm.compileFunction(sea.getAsset(TYPESCRIPT_ASSET, 'utf8'), ['exports', 'require', 'module', '__filename', '__dirname'], { filename: file })
  wrapper(module.exports, require, module, file, dirname(file))
  return module.exports as typeof TS
}

/** The package path of the file shipped as the asset (TypeScript's one-file CommonJS build). */
export function typescriptFile (): string {
  return require.resolve('typescript/lib/typescript.js')
}
