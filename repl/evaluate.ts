/**
 * Evaluating operator input. `-e` mode: one TypeScript expression (or a few statements),
 * top-level await allowed, transpiled with TypeScript and run with `cluster` in scope.
 */
import vm from 'node:vm'
import ts from 'typescript'
import { OriginError } from '../node/errors'

function transpile (body: string): { js: string, errors: string[] } {
  const out = ts.transpileModule(body, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.None },
    reportDiagnostics: true
  })
  const errors = (out.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
  return { js: out.outputText, errors }
}

/** Evaluate `code` with `scope` as globals; resolves with its value. */
export async function evaluate (code: string, scope: Record<string, unknown>): Promise<unknown> {
  // An expression first (so `await cluster.nodes()` returns its value), else statements.
  let attempt = transpile(`(async () => (\n${code}\n))()`)
  if (attempt.errors.length > 0) {
    const statements = transpile(`(async () => {\n${code}\n})()`)
    if (statements.errors.length > 0) throw new OriginError('E_ARGS', `cannot compile: ${statements.errors.join('; ')}`)
    attempt = statements
  }
  const context = vm.createContext({ ...scope, console, setTimeout, clearTimeout, URL, Buffer, process })
  return await vm.runInContext(attempt.js, context, { filename: 'repl-eval.ts' })
}
