/**
 * The spec repo's `ops/*.ts` in the operator's REPL: every exported function of every ops
 * file, under `ops` (`await ops.aliveCount(cluster)`). Checked before each evaluation and
 * reloaded when the spec changes, so a pushed helper is there at the next prompt.
 * Helpers run here, in the operator's own process, as the operator's own code: they may
 * import node built-ins and each other (`./other`).
 */
import Module from 'node:module'
import vm from 'node:vm'
import ts from 'typescript'
import { errorMessage } from '../node/errors'
import type { Cluster } from './client'
import { call } from '../node/protocol/table'
import { operator } from '../node/protocol/operator'

export interface OpsNamespace { [name: string]: unknown }

export class OpsLoader {
  private version = ''
  readonly ops: OpsNamespace = {}
  /** Each helper's first line of documentation (its JSDoc), for `.help`. */
  readonly docs: Record<string, string> = {}
  /** What went wrong loading the helpers, for the operator. */
  problems: string[] = []

  constructor (private readonly cluster: Cluster) {}

  /** Reload when the applied spec changed. Never throws: a broken helper must not break the REPL. */
  async refresh (): Promise<void> {
    let got: { version: string, files: Record<string, string> }
    try {
      got = await call(this.cluster.link, operator, 'cluster.ops')
    } catch {
      return // the connection's problem shows on the operator's own call
    }
    if (got.version === this.version) return
    this.version = got.version
    this.load(got.files)
  }

  private load (files: Record<string, string>): void {
    for (const key of Object.keys(this.ops)) delete this.ops[key]
    for (const key of Object.keys(this.docs)) delete this.docs[key]
    this.problems = []
    const cache = new Map<string, Record<string, unknown>>()
    const evaluate = (path: string, stack: string[]): Record<string, unknown> => {
      const done = cache.get(path)
      if (done !== undefined) return done
      if (stack.includes(path)) throw new Error(`import cycle: ${[...stack, path].join(' -> ')}`)
      const source = files[path]
      if (source === undefined) throw new Error(`no ${path} in the spec's ops/`)
      const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true }, fileName: path }).outputText
      const module = { exports: {} as Record<string, unknown> }
      cache.set(path, module.exports)
      const local = (spec: string): unknown => {
        if (!spec.startsWith('./')) return Module.createRequire(__filename)(spec)
        const target = `ops/${spec.slice(2).replace(/\.ts$/, '')}.ts`
        return evaluate(target, [...stack, path])
      }
      const fn = vm.runInThisContext(`(function (exports, require, module) {${js}\n})`, { filename: path }) as (e: unknown, r: unknown, m: unknown) => void
      fn(module.exports, local, module)
      cache.set(path, module.exports)
      return module.exports
    }
    for (const path of Object.keys(files).sort()) {
      try {
        for (const [name, value] of Object.entries(evaluate(path, []))) {
          if (name === 'default' || name === '__esModule') continue
          if (name in this.ops) this.problems.push(`${path}: ${name} is exported by another ops file too; this one wins`)
          this.ops[name] = value
        }
        Object.assign(this.docs, docsOf(path, files[path] ?? ''))
      } catch (err) {
        this.problems.push(`${path}: ${errorMessage(err)}`)
      }
    }
  }
}

/** The first line of the JSDoc of each exported function or const in `source`. */
function docsOf (path: string, source: string): Record<string, string> {
  const out: Record<string, string> = {}
  const file = ts.createSourceFile(path, source, ts.ScriptTarget.ES2022, true)
  for (const st of file.statements) {
    const exported = ts.canHaveModifiers(st) && (ts.getModifiers(st) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
    if (!exported) continue
    const names = ts.isFunctionDeclaration(st) && st.name !== undefined
      ? [st.name.text]
      : ts.isVariableStatement(st) ? st.declarationList.declarations.flatMap((d) => ts.isIdentifier(d.name) ? [d.name.text] : []) : []
    const doc = ts.getJSDocCommentsAndTags(ts.isVariableStatement(st) ? st.declarationList.declarations[0] ?? st : st)
      .map((d) => ts.getTextOfJSDocComment(d.comment) ?? '').find((t) => t !== '')
    if (doc !== undefined) for (const n of names) out[n] = doc.split('\n')[0]!.trim()
  }
  return out
}
