/**
 * Evaluates the spec repo's TS files: transpiled with TypeScript, run in their own `vm`
 * context under a time limit, able to `require` only other files of the spec repo and
 * `origin/spec`. What a file exports comes back as plain JSON data (serialized inside the
 * context), so no getter, proxy or function of a spec ever runs in the node's own realm.
 *
 * This guards against mistakes (a loop, an import of `fs`, a typo), not against a hostile
 * author: whoever can push to the spec repo already decides what the cluster runs. It
 * still closes the cheap escapes: no host object reaches spec code, and `eval` / `new
 * Function` are disabled in the context.
 */
import { SourceMap } from 'node:module'
import { posix } from 'node:path'
import vm from 'node:vm'
import type * as TS from 'typescript'
import * as define from './define'
import type { SpecError, SpecFiles } from './types'

export interface SandboxInit {
  files: SpecFiles
  /** Time limit for evaluating one entry file, with everything it imports. @default 1000 */
  timeoutMs?: number
  /** Problems with a JSON file a TS file imports ([] if it parses). */
  jsonErrors: (file: string) => SpecError[]
}

export type Evaluation = { ok: true, value: unknown } | { ok: false, errors: SpecError[] }

/** What `host.resolve` tells the loader inside the context about one `require(id)`. */
type Resolved =
  | { kind: 'spec' }
  | { kind: 'ts', key: string, fn: unknown }
  | { kind: 'json', key: string, text: string }
  | { kind: 'error', message: string, reported: boolean }

/** What the loader inside the context reports for one entry, as JSON text. */
type Outcome =
  | { ok: true, json: string }
  | { ok: false, message: string, stack?: string, loader: boolean, reported: boolean }

interface Transpiled { js: string, map?: SourceMap, errors: SpecError[] }

const PREFIX = '(function (exports, require, module, __filename, __dirname) {'
const DEFINE_NAMES = Object.keys(define).filter((k) => typeof (define as Record<string, unknown>)[k] === 'function')

/**
 * The loader, run inside the context. Strict code, builtins captured before any spec runs.
 * Defines a non-writable global `__originRun(key)` that evaluates an entry and returns an
 * Outcome as JSON.
 */
const LOADER = `'use strict';
(function (host, defineNames) {
  const stringify = JSON.stringify, parse = JSON.parse, hasOwn = Object.prototype.hasOwnProperty, ErrorC = Error, MapC = Map, StringC = String
  const noop = function () {}
  Object.defineProperty(globalThis, 'console', { value: new Proxy({}, { get: () => noop }) })
  const spec = {}
  for (const name of defineNames.split(',')) spec[name] = function (value) { return value }
  Object.freeze(spec)
  const cache = new MapC()
  function loaderError (message, reported) {
    const e = new ErrorC(message); e.originLoader = true; e.originReported = reported === true; return e
  }
  function load (key, fn, chain) {
    const hit = cache.get(key)
    if (hit !== undefined) {
      if (hit.loading) throw loaderError('import cycle: ' + chain.concat([key]).join(' -> '))
      return hit.module.exports
    }
    const module = { exports: {} }
    const entry = { loading: true, module }
    cache.set(key, entry)
    host.enter(key)
    try {
      fn.call(module.exports, module.exports, requireFrom(key, chain.concat([key])), module, key, key.replace(/[^/]*$/, ''))
    } catch (e) {
      cache.delete(key)
      throw e
    } finally {
      host.leave()
    }
    entry.loading = false
    return module.exports
  }
  function requireFrom (from, chain) {
    return function require (id) {
      const r = host.resolve(from, StringC(id))
      if (r.kind === 'spec') return spec
      if (r.kind === 'error') throw loaderError(r.message, r.reported)
      if (r.kind === 'json') return parse(r.text)
      return load(r.key, r.fn, chain)
    }
  }
  function plain (key, value) {
    const t = typeof value
    if (t === 'function' || t === 'symbol' || t === 'bigint') {
      throw loaderError('the value at "' + key + '" is a ' + t + '; a spec holds only plain data')
    }
    return value
  }
  function run (key) {
    try {
      // the entry resolves like an import of itself, so it is compiled and cached the same way
      const r = host.resolve(key, './' + key.replace(/^.*\\//, ''))
      if (r.kind !== 'ts') throw loaderError(r.message, r.reported)
      const exports = load(r.key, r.fn, [])
      let value = exports
      if (value !== null && typeof value === 'object' && hasOwn.call(value, 'default')) value = value.default
      else if (value !== null && typeof value === 'object' && value.__esModule === true) {
        throw loaderError('has no default export (write: export default defineService({ ... }))')
      }
      if (value === undefined || value === null) throw loaderError('exports nothing (write: export default ...)')
      if (typeof value.then === 'function') throw loaderError('exports a Promise; a spec must be a plain value')
      return stringify({ ok: true, json: stringify(value, plain) })
    } catch (e) {
      let out
      try {
        const isError = e !== null && typeof e === 'object' && typeof e.message === 'string'
        out = isError
          ? { ok: false, message: (e.originLoader === true ? '' : 'threw ' + StringC(e.name) + ': ') + e.message, stack: StringC(e.stack), loader: e.originLoader === true, reported: e.originReported === true }
          : { ok: false, message: 'threw ' + StringC(e), loader: false, reported: false }
      } catch (_) {
        out = { ok: false, message: 'threw a value that cannot be described', loader: false, reported: false }
      }
      return stringify(out)
    }
  }
  Object.defineProperty(globalThis, '__originRun', { value: run })
})`

let ts: typeof TS | undefined
/** TypeScript is loaded on first use: a spec repo of JSON files never pays for it. */
function typescript (): typeof TS {
  ts ??= require('typescript') as typeof TS
  return ts
}

function transpile (file: string, source: string): Transpiled {
  const t = typescript()
  const out = t.transpileModule(source, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: { module: t.ModuleKind.CommonJS, target: t.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: true }
  })
  const errors = (out.diagnostics ?? []).map((d): SpecError => {
    const message = t.flattenDiagnosticMessageText(d.messageText, '\n')
    if (d.file === undefined || d.start === undefined) return { file, message }
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start)
    return { file, line: line + 1, column: character + 1, message }
  })
  const map = out.sourceMapText === undefined ? undefined : new SourceMap(JSON.parse(out.sourceMapText))
  return { js: out.outputText.replace(/\/\/# sourceMappingURL=.*\s*$/, ''), map, errors }
}

export class SpecSandbox {
  private readonly timeoutMs: number
  private readonly transpiled = new Map<string, Transpiled>()
  private context!: vm.Context
  private functions = new Map<string, unknown>()
  private running: string[] = []
  private found: SpecError[] = []

  constructor (private readonly init: SandboxInit) {
    this.timeoutMs = init.timeoutMs ?? 1000
    this.reset()
  }

  /** Evaluate one TS file: the value it exports, as plain data, or what went wrong. */
  evaluate (file: string): Evaluation {
    const own = this.transpile(file)
    if (own.errors.length > 0) return { ok: false, errors: own.errors }
    this.found = []
    this.running = []
    let text: string
    try {
      text = new vm.Script(`__originRun(${JSON.stringify(file)})`, { filename: 'origin:run' })
        .runInContext(this.context, { timeout: this.timeoutMs }) as string
    } catch (err) {
      const culprit = this.running.at(-1) ?? file
      this.reset() // the loader's state is cut mid-way: start the next entry afresh
      if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
        return { ok: false, errors: [...this.found, { file: culprit, message: `ran past its ${this.timeoutMs} ms time limit` }] }
      }
      return { ok: false, errors: [...this.found, { file: culprit, message: `could not be evaluated: ${String(err)}` }] }
    }
    const outcome = JSON.parse(text) as Outcome
    if (outcome.ok) return { ok: true, value: JSON.parse(outcome.json) }
    if (outcome.reported) return { ok: false, errors: this.found }
    return { ok: false, errors: [...this.found, { ...this.locate(outcome.stack, file), message: outcome.message }] }
  }

  private reset (): void {
    this.context = vm.createContext(Object.create(null), {
      name: 'origin spec',
      codeGeneration: { strings: false, wasm: false },
      microtaskMode: 'afterEvaluate'
    })
    const boot = new vm.Script(LOADER, { filename: 'origin:loader' }).runInContext(this.context) as (host: object, names: string) => void
    boot({
      resolve: (from: string, id: string): Resolved => {
        // a host Error must not reach spec code (its constructor is the host's Function)
        try { return this.resolve(from, id) } catch (err) { return { kind: 'error', message: String(err), reported: false } }
      },
      enter: (key: string) => { this.running.push(key) },
      leave: () => { this.running.pop() }
    }, DEFINE_NAMES.join(','))
    this.functions = new Map()
  }

  private transpile (file: string): Transpiled {
    let t = this.transpiled.get(file)
    if (t === undefined) {
      t = transpile(file, (this.init.files.get(file) ?? Buffer.alloc(0)).toString('utf8'))
      this.transpiled.set(file, t)
    }
    return t
  }

  private resolve (from: string, id: string): Resolved {
    if (id === 'origin/spec') return { kind: 'spec' }
    const refused: Resolved = { kind: 'error', message: `may import only files of the spec repo and 'origin/spec', not ${JSON.stringify(id)}`, reported: false }
    if (!/^\.\.?(\/|$)/.test(id)) return refused
    const base = posix.normalize(posix.join(posix.dirname(from), id))
    if (base === '..' || base.startsWith('../')) return refused
    const candidates = /\.(ts|json)$/.test(base) ? [base] : [`${base}.ts`, `${base}.json`, `${base}/index.ts`]
    const key = candidates.find((c) => this.init.files.has(c))
    if (key === undefined) {
      const other = this.init.files.has(base) ? ` (${base} is neither .ts nor .json)` : ` (looked for ${candidates.join(', ')})`
      return { kind: 'error', message: `cannot find ${JSON.stringify(id)}${other}`, reported: false }
    }
    if (key.endsWith('.json')) {
      const errors = this.init.jsonErrors(key)
      this.found.push(...errors)
      if (errors.length > 0) return { kind: 'error', message: `${key} is not valid JSON`, reported: true }
      return { kind: 'json', key, text: this.init.files.get(key)?.toString('utf8').replace(/^\uFEFF/, '') ?? '' }
    }
    const t = this.transpile(key)
    if (t.errors.length > 0) {
      if (key !== from) this.found.push(...t.errors)
      return { kind: 'error', message: `${key} has syntax errors`, reported: true }
    }
    let fn = this.functions.get(key)
    if (fn === undefined) {
      fn = new vm.Script(`${PREFIX}${t.js}\n})`, { filename: key }).runInContext(this.context)
      this.functions.set(key, fn)
    }
    return { kind: 'ts', key, fn }
  }

  /** The innermost frame of a stack that is in a spec file, mapped back to the .ts source. */
  private locate (stack: string | undefined, fallback: string): Pick<SpecError, 'file' | 'line' | 'column'> {
    for (const line of (stack ?? '').split('\n')) {
      const m = /(?:\(|at )([^()]+?):(\d+):(\d+)\)?\s*$/.exec(line)
      if (m === null) continue
      const t = this.transpiled.get(m[1])
      if (t === undefined) continue
      const genLine = Number(m[2]) - 1
      const genColumn = Number(m[3]) - 1 - (genLine === 0 ? PREFIX.length : 0)
      const entry = t.map?.findEntry(genLine, Math.max(0, genColumn)) as { originalLine?: number, originalColumn?: number } | undefined
      if (entry?.originalLine === undefined) return { file: m[1], line: genLine + 1 }
      return { file: m[1], line: entry.originalLine + 1, column: (entry.originalColumn ?? 0) + 1 }
    }
    return { file: fallback }
  }
}
