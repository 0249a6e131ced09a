/**
 * Where TypeScript comes from (node/typescript.ts `useTypescript`): an embedder's
 * loader is used in place of the package, once, the first time code is transpiled. Here
 * the loader compiles TypeScript's file from its text, as an `origin-node` executable
 * would from an asset.
 */
import test from 'ava'
import { readFileSync } from 'node:fs'
import vm from 'node:vm'
import type * as TS from 'typescript'
import { evaluate } from '../../node/control/eval'
import { typescript, useTypescript } from '../../node/typescript'

function fromText (file: string): typeof TS {
  const module = { exports: {} as unknown }
  const wrapper = vm.compileFunction(readFileSync(file, 'utf8'), ['exports', 'require', 'module', '__filename', '__dirname'], { filename: file })
  wrapper(module.exports, require, module, file, '.')
  return module.exports as typeof TS
}

test('sandbox: TypeScript comes from the loader an embedder gives, loaded once when code is first transpiled', (t) => {
  const file = require.resolve('typescript')
  let loads = 0
  useTypescript(() => { loads++; return fromText(file) })
  t.is(loads, 0, 'nothing is loaded before it is needed')
  t.is(evaluate('const x: number = 20; x * 2 + 2', {}).value, 42)
  t.is(evaluate('[1, 2].map((n: number) => n * 2)', {}).value?.toString(), '2,4')
  t.is(loads, 1)
  t.not(typescript(), require('typescript'), 'not the package require would give')
  t.is(typescript().version, (require('typescript') as typeof TS).version)
})
