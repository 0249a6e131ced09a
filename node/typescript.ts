/**
 * TypeScript, loaded once when something first transpiles (a spec file in the evaluator, an
 * operator's `eval` on a node). Shared by the layers that transpile, so neither reaches into
 * the other for it.
 */
import type * as TS from 'typescript'

let ts: typeof TS | undefined
let loadTypescript = (): typeof TS => require('typescript') as typeof TS

/**
 * Where TypeScript comes from when it is first needed: the package, unless an embedder
 * gives another way. An `origin-node` executable can keep TypeScript (9.5 of the 14 MiB of
 * JavaScript a node bundles, all of it held in the node's memory) out of the node's bundle
 * and load it from an asset only when an operator evaluates code.
 */
export function useTypescript (load: () => typeof TS): void {
  loadTypescript = load
  ts = undefined
}

/** TypeScript, loaded once (the evaluator loads it before it says it is ready). */
export function typescript (): typeof TS {
  ts ??= loadTypescript()
  return ts
}

/** Whether TypeScript has been loaded (it is not until something needs it). */
export function typescriptLoaded (): boolean {
  return ts !== undefined
}
