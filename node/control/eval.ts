/**
 * `cluster.on(node).eval(code)` / `cluster.each(code)`: TypeScript evaluated on a node, the
 * Clojure way. The code is transpiled (no type check), run in a fresh vm context that holds
 * only a frozen, read-only `node` (its id, member table, applied spec, instances, process
 * stats, journal tail) — no require, no process, no timers, no eval — under a time limit
 * that covers its promises too (their microtasks run inside the limit, and nothing in the
 * context can wait on the outside). The value comes back as JSON-safe data, size-bounded.
 *
 * The node runs it apart (`evaluateApart`): on a thread of its own with a heap limit, so its
 * event loop and heartbeats go on meanwhile and code that allocates without end is stopped.
 *
 * Only operators named in the applied spec's `cluster.operators.eval` may evaluate; every
 * evaluation is a journal line on the node that ran it, with the operator and the code.
 *
 * @example
 *   evaluate('Object.keys(node.members).length', view, { timeoutMs: 2000 })              // { value: 3, ms: 1.2 }
 *   await evaluateApart('Object.keys(node.members).length', view, { timeoutMs: 2000 })   // the same, on its own thread
 */
import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import { OriginError, type OriginErrorJSON } from '../errors'
import { typescript } from '../typescript'

// Loaded on the first evaluation: most nodes never evaluate anything, and these built-in
// modules (the worker machinery above all) are memory an idle node would hold for nothing.
const vm = (): typeof import('node:vm') => require('node:vm')
const workerThreads = (): typeof import('node:worker_threads') => require('node:worker_threads')

export interface EvalOptions {
  /** Time the code (and its promises) may take before it is stopped: longer lets long queries finish, and runaway code run longer. @default 1000 */
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

/** True when `src` parses as a JavaScript script (it is compiled, not run). */
function parsesAsScript (src: string): boolean {
  try {
    new (vm().Script)(src) // eslint-disable-line no-new
    return true
  } catch {
    return false
  }
}

/** What awaited code becomes: the expression as an async function's result, or statements as its body. */
const asyncForms = [(code: string): string => `(async () => (\n${code}\n))()`, (code: string): string => `(async () => {\n${code}\n})()`]

/**
 * Transpiles `code` to a script: without `await`, its completion value (as a script's, so
 * `const x = 2; x * 21` gives 42) is the value; with `await`, it calls `__settle` with the
 * promise of an async function whose result is the expression, or what the statements return.
 *
 * Code that is JavaScript already (most of what operators type: `node.process.rssMb`) is
 * used as it is: TypeScript (about 40 MiB of a node's memory once loaded, and a second to
 * load) is loaded only for code that needs it, such as type annotations.
 */
export function compile (code: string): string {
  if (!/\bawait\b/.test(code)) {
    if (parsesAsScript(code)) return code
  } else {
    for (const form of asyncForms) {
      const wrapped = form(code)
      if (parsesAsScript(wrapped)) return `__settle(${wrapped});`
    }
  }
  return transpile(code)
}

/** `compile` for code that is not JavaScript as it is: transpiled by TypeScript (no type check). */
function transpile (code: string): string {
  const t = typescript()
  const js = (src: string): { text: string, errors: string[] } => {
    const out = t.transpileModule(src, { reportDiagnostics: true, compilerOptions: { target: t.ScriptTarget.ES2022, module: t.ModuleKind.None, removeComments: false } })
    return { text: out.outputText, errors: (out.diagnostics ?? []).map((d) => t.flattenDiagnosticMessageText(d.messageText, '\n')) }
  }
  const plain = js(code)
  if (plain.errors.length > 0) throw new OriginError('E_ARGS', `does not compile: ${plain.errors[0]}`, { errors: plain.errors })
  if (!/\bawait\b/.test(code)) return plain.text
  // With await: an expression becomes the async function's result; statements return what they return.
  const asExpr = js(asyncForms[0](code))
  if (asExpr.errors.length === 0) return `__settle(${asExpr.text.trim().replace(/;$/, '')});`
  const asBody = js(asyncForms[1](code))
  if (asBody.errors.length > 0) throw new OriginError('E_ARGS', `does not compile: ${asBody.errors[0]}`, { errors: asBody.errors })
  return `__settle(${asBody.text.trim().replace(/;$/, '')});`
}

/** Evaluates `code` against `view` (the node's read-only facts) in a fresh context, on this thread. */
export function evaluate (code: string, view: unknown, o: EvalOptions = {}): EvalResult {
  const t0 = performance.now()
  return execute(compile(code), view, o, t0)
}

/** Runs a script from `compile` against `view`: the part that may loop, throw or allocate. */
export function execute (script: string, view: unknown, o: EvalOptions = {}, t0 = performance.now()): EvalResult {
  const timeout = o.timeoutMs ?? evalDefaults.timeoutMs
  const maxBytes = o.maxBytes ?? evalDefaults.maxBytes
  const ctx = vm().createContext({ __node: JSON.stringify(view) }, {
    codeGeneration: { strings: false, wasm: false },
    microtaskMode: 'afterEvaluate'
  })
  const run = (src: string, name: string): unknown => {
    try {
      return vm().runInContext(src, ctx, { timeout, filename: name, breakOnSigint: false })
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

/** Heap an evaluation's thread may use: code that allocates without end ends its thread, not the node. @default 128 MiB */
export const evalHeapMb = 128
/** Threads kept for the next evaluations (each evaluation still gets a fresh vm context). */
const keepIdle = 2
/**
 * How long a kept thread waits for a next evaluation before it ends. An idle thread holds
 * about 6 MiB of the node's memory; a new one costs the next evaluation some 30 ms.
 * Operators evaluate in bursts (a REPL session), so a thread outlives a burst, not the day.
 */
export const idleThreadMs = 30_000
let idleMs = idleThreadMs
const idle: Worker[] = []
const idleTimers = new Map<Worker, NodeJS.Timeout>()

function keep (worker: Worker): void {
  worker.unref()
  idle.push(worker)
  const timer = setTimeout(() => {
    idleTimers.delete(worker)
    const at = idle.indexOf(worker)
    if (at >= 0) { idle.splice(at, 1); void worker.terminate() }
  }, idleMs)
  timer.unref()
  idleTimers.set(worker, timer)
}

/** How long kept threads wait from now on (tests shorten it); how many wait now. */
export function keepThreadsFor (ms: number): void { idleMs = ms }
export function idleThreads (): number { return idle.length }

function takeIdle (): Worker | undefined {
  const worker = idle.pop()
  if (worker !== undefined) { clearTimeout(idleTimers.get(worker)); idleTimers.delete(worker) }
  return worker
}

let threadCode: (() => string) | undefined

/**
 * Where an evaluation thread's code comes from: eval-worker.js beside this file, unless an
 * embedder gives its source. An `origin-node` executable carries no files; it hands over the
 * worker bundled apart, from its asset.
 */
export function useEvalThreadCode (load: () => string): void {
  let code: string | undefined
  threadCode = () => (code ??= load())
}

function newThread (): Worker {
  const options = {
    resourceLimits: { maxOldGenerationSizeMb: evalHeapMb, maxYoungGenerationSizeMb: 16 },
    stdout: true,
    stderr: true
  }
  return threadCode === undefined
    ? new (workerThreads().Worker)(join(__dirname, 'eval-worker.js'), options)
    : new (workerThreads().Worker)(threadCode(), { ...options, eval: true })
}

type Answer = { ok: true, result: EvalResult } | { ok: false, error: OriginErrorJSON }

/**
 * `evaluate`, on a thread of its own (transpiled here, where TypeScript stays loaded): the
 * node's event loop goes on while the code runs (its heartbeats too), a heap limit ends code
 * that allocates without end, and should the thread not answer in time it is terminated.
 * A thread that answered is kept for a next evaluation; one that failed is not.
 */
export async function evaluateApart (code: string, view: unknown, o: EvalOptions = {}): Promise<EvalResult> {
  const t0 = performance.now()
  const script = compile(code)
  const timeout = o.timeoutMs ?? evalDefaults.timeoutMs
  const worker = takeIdle() ?? newThread()
  worker.ref()
  let timer: NodeJS.Timeout | undefined
  let healthy = false
  const off: Array<() => void> = []
  try {
    const answer = await new Promise<Answer>((resolve, reject) => {
      // The vm's own limit stops the code; this one covers the thread's start and a thread stuck past it.
      // Real time, as the vm's limit: both bound a real thread.
      timer = setTimeout(() => reject(new OriginError('E_TIMEOUT', `stopped after the ${timeout} ms time limit (its thread did not answer)`, { timeoutMs: timeout })), timeout + 5000)
      const onMessage = (a: Answer): void => { healthy = true; resolve(a) }
      const onError = (err: Error & { code?: string }): void => reject(err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new OriginError('E_ARGS', `stopped: it used more than the ${evalHeapMb} MiB of memory an evaluation may`, { heapMb: evalHeapMb })
        : new OriginError('E_INTERNAL', `the evaluation's thread failed: ${err.message}`))
      const onExit = (exitCode: number): void => reject(new OriginError('E_INTERNAL', `the evaluation's thread exited (${exitCode}) without an answer`))
      worker.once('message', onMessage).once('error', onError).once('exit', onExit)
      off.push(() => { worker.off('message', onMessage).off('error', onError).off('exit', onExit) })
      worker.postMessage({ script, view: JSON.stringify(view), options: o })
    })
    if (!answer.ok) throw OriginError.fromJSON(answer.error)
    return { value: answer.result.value, ms: Math.round((performance.now() - t0) * 1000) / 1000 }
  } finally {
    clearTimeout(timer)
    for (const f of off) f()
    if (healthy && idle.length < keepIdle) keep(worker)
    else void worker.terminate()
  }
}

/** Ends the threads kept for next evaluations (the node stops). */
export async function endIdleThreads (): Promise<void> {
  for (const timer of idleTimers.values()) clearTimeout(timer)
  idleTimers.clear()
  await Promise.all(idle.splice(0).map(async (w) => await w.terminate()))
}
