/**
 * `cluster.on(node).eval(code)` / `cluster.each(code)`: TypeScript evaluated on a node, the
 * Clojure way. The code is transpiled (no type check), run in a fresh vm context that holds
 * only a frozen, read-only `node` (its id, member table, applied spec, instances, process
 * stats, journal tail) — no require, no process, no timers, no eval — under a time limit
 * that covers its promises too (their microtasks run inside the limit, and nothing in the
 * context can wait on the outside). The value comes back as JSON-safe data, size-bounded.
 *
 * Only operators named in the applied spec's `cluster.operators.eval` may evaluate; every
 * evaluation is a journal line on the node that ran it, with the operator and the code.
 *
 * @example
 *   await evaluate('node.members.length', view, { timeoutMs: 2000 })  // { value: 3, ms: 1.2 }
 */
import vm from 'node:vm'
import { OriginError } from '../errors'
import { typescript } from '../spec/sandbox'

export interface EvalOptions {
  /**
   * Time the code (and its promises) may take before it is stopped. It runs on the node's
   * thread: a longer limit lets runaway code delay the node's heartbeats longer. @default 1000
   */
  timeoutMs?: number
  /** The largest value returned, as JSON, in bytes. @default 1 MiB */
  maxBytes?: number
}

export interface EvalResult {
  /** The value, as JSON data (undefined becomes null, bigint a string, functions and cycles named). */
  value: unknown
  /** How long the evaluation took on the node, in ms. */
  ms: number
}

export const evalDefaults = { timeoutMs: 1000, maxBytes: 1024 * 1024 }

/**
 * Runs in the context before the code: rebuilds `node` from JSON inside the context (so
 * nothing of the node's own realm is reachable through prototypes), deep-freezes it, and
 * defines how results are turned into JSON there (a getter looping forever is under the
 * time limit too).
 */
const prelude = `
'use strict';
const freeze = (o) => { if (o !== null && typeof o === 'object') { Object.freeze(o); for (const k of Object.keys(o)) freeze(o[k]) } return o };
globalThis.node = freeze(JSON.parse(globalThis.__node));
delete globalThis.__node;
globalThis.__settle = (p) => { Promise.resolve(p).then((v) => { globalThis.__done = { ok: true, v } }, (e) => { globalThis.__done = { ok: false, e } }) };
globalThis.__json = () => {
  const d = globalThis.__done;
  if (!d.ok) {
    const e = d.e;
    return JSON.stringify({ ok: false, name: e instanceof Error ? e.name : typeof e, message: e instanceof Error ? e.message : String(e) });
  }
  const seen = new WeakSet();
  const replacer = function (k, v) {
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'function') return '[function ' + (v.name || 'anonymous') + ']';
    if (typeof v === 'symbol') return v.toString();
    if (v instanceof Map) return Object.fromEntries(v);
    if (v instanceof Set) return [...v];
    if (v instanceof Error) return { name: v.name, message: v.message };
    if (v !== null && typeof v === 'object') { if (seen.has(v)) return '[circular]'; seen.add(v) }
    return v;
  };
  return JSON.stringify({ ok: true, v: d.v === undefined ? null : d.v }, replacer);
};
`

/**
 * Transpiles `code` to a script: without `await`, its completion value (as a script's, so
 * `const x = 2; x * 21` gives 42) is the value; with `await`, it calls `__settle` with the
 * promise of an async function whose result is the expression, or what the statements return.
 */
export function compile (code: string): string {
  const t = typescript()
  const js = (src: string): { text: string, errors: string[] } => {
    const out = t.transpileModule(src, { reportDiagnostics: true, compilerOptions: { target: t.ScriptTarget.ES2022, module: t.ModuleKind.None, removeComments: false } })
    return { text: out.outputText, errors: (out.diagnostics ?? []).map((d) => t.flattenDiagnosticMessageText(d.messageText, '\n')) }
  }
  const plain = js(code)
  if (plain.errors.length > 0) throw new OriginError('E_ARGS', `does not compile: ${plain.errors[0]}`, { errors: plain.errors })
  if (!/\bawait\b/.test(code)) return plain.text
  // With await: an expression becomes the async function's result; statements return what they return.
  const asExpr = js(`(async () => (\n${code}\n))()`)
  if (asExpr.errors.length === 0) return `__settle(${asExpr.text.trim().replace(/;$/, '')});`
  const asBody = js(`(async () => {\n${code}\n})()`)
  if (asBody.errors.length > 0) throw new OriginError('E_ARGS', `does not compile: ${asBody.errors[0]}`, { errors: asBody.errors })
  return `__settle(${asBody.text.trim().replace(/;$/, '')});`
}

/** Evaluates `code` against `view` (the node's read-only facts) in a fresh context. */
export function evaluate (code: string, view: unknown, o: EvalOptions = {}): EvalResult {
  const timeout = o.timeoutMs ?? evalDefaults.timeoutMs
  const maxBytes = o.maxBytes ?? evalDefaults.maxBytes
  const t0 = performance.now()
  const script = compile(code)
  const ctx = vm.createContext({ __node: JSON.stringify(view) }, {
    codeGeneration: { strings: false, wasm: false },
    microtaskMode: 'afterEvaluate'
  })
  const run = (src: string, name: string): unknown => {
    try {
      return vm.runInContext(src, ctx, { timeout, filename: name, breakOnSigint: false })
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw new OriginError('E_TIMEOUT', `stopped after the ${timeout} ms time limit`, { timeoutMs: timeout })
      throw err
    }
  }
  run(prelude, 'prelude')
  let json: string
  try {
    if (script.startsWith('__settle(')) run(script, 'eval')
    else {
      ctx.__completion = run(script, 'eval')
      run('__settle(__completion)', 'settle')
    }
    if (ctx.__done === undefined) throw new OriginError('E_TIMEOUT', 'its promise never settled (nothing in the evaluation can wait on the outside)', {})
    json = run('__json()', 'result') as string
  } catch (err) {
    if (err instanceof OriginError) throw err
    // Thrown synchronously: an error of the context's realm, or anything.
    const e = err as { name?: unknown, message?: unknown }
    throw new OriginError('E_ARGS', `${String(e?.name ?? 'Error')}: ${String(e?.message ?? err)}`, { name: String(e?.name ?? 'Error') })
  }
  if (json.length > maxBytes) throw new OriginError('E_FRAME_TOO_LARGE', `the value is ${json.length} bytes as JSON, over the ${maxBytes} byte limit: return less`, { bytes: json.length, maxBytes })
  const r = JSON.parse(json) as { ok: true, v: unknown } | { ok: false, name: string, message: string }
  const ms = Math.round((performance.now() - t0) * 1000) / 1000
  if (!r.ok) throw new OriginError('E_ARGS', `${r.name}: ${r.message}`, { name: r.name })
  return { value: r.v, ms }
}
