/**
 * Evaluates the spec repo's TS files, inside the evaluator process (evaluator-child.ts; the
 * node never loads this file): each entry file is transpiled with TypeScript and run in a
 * fresh `vm` context of its own under a time limit, able to `require` only other files of
 * the spec repo and `origin/spec`. What a file exports comes back as JSON text, serialized
 * inside its context, so no getter, proxy or function of a spec runs outside it, and one
 * file's changes to builtins (`Object.prototype.toJSON = ...`) are not seen by the next.
 *
 * This guards against mistakes (a loop, an import of `fs`, a typo), not against a hostile
 * author: whoever can push to the spec repo already decides what the cluster runs. It
 * still closes the cheap escapes: no host object reaches spec code, and `eval` / `new
 * Function` are disabled in the context. Memory, total time and output are bounded by the
 * process around it (evaluator.ts).
 */
import { SourceMap } from 'node:module'
import { posix } from 'node:path'
import vm from 'node:vm'
import { typescript } from '../typescript'
import * as define from './define'
import { parseJson } from './json'
import type { SpecError } from './types'

export interface SandboxInit {
  /** Whether the spec repo has this file (contents are read only when imported). */
  has: (path: string) => boolean
  /** The text of a file of the spec repo, or why it may not be read. Called once a file. */
  read: (path: string) => { ok: true, text: string } | { ok: false, message: string }
}

/** One entry file's exported value as JSON text, or what went wrong. */
export type Evaluation = { ok: true, json: string } | { ok: false, errors: SpecError[] }

/** What `host.resolve` tells the loader inside the context about one `require(id)`. */
type Resolved =
  | { kind: 'spec' }
  | { kind: 'ts', key: string, fn: unknown }
  | { kind: 'json', key: string, text: string }
  | { kind: 'error', message: string, reported: boolean }

/** What the loader inside the context reports for one entry (through host.done / host.fail). */
type Outcome =
  | { ok: true, json: string }
  | { ok: false, message: string, stack: string, loader: boolean, reported: boolean }

interface Transpiled { js: string, map?: SourceMap, errors: SpecError[] }

/** Longest message or stack taken from spec code: an error message is not a data channel. */
const MAX_TEXT = 4000

const PREFIX = '(function (exports, require, module, __filename, __dirname) {'
const DEFINE_NAMES = Object.keys(define).filter((k) => typeof (define as Record<string, unknown>)[k] === 'function')

/**
 * The loader, run inside the context. Strict code, builtins captured before any spec runs.
 * Defines a non-writable global `__originRun(key)` that evaluates an entry and hands the
 * outcome to the host as primitives (host.done(json) or host.fail(...)): nothing the spec
 * may have changed (a toJSON on Object.prototype, say) is used to wrap it.
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
      const json = stringify(value, plain)
      if (typeof json !== 'string') throw loaderError('exports a value JSON cannot hold (does a toJSON method return undefined?)')
      host.done(json)
    } catch (e) {
      try {
        const isError = e !== null && typeof e === 'object' && typeof e.message === 'string'
        if (isError) host.fail((e.originLoader === true ? '' : 'threw ' + StringC(e.name) + ': ') + e.message, StringC(e.stack), e.originLoader === true, e.originReported === true)
        else host.fail('threw ' + StringC(e), '', false, false)
      } catch (_) {
        host.fail('threw a value that cannot be described', '', false, false)
      }
    }
  }
  Object.defineProperty(globalThis, '__originRun', { value: run })
})`

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

const clip = (text: unknown, fallback: string): string => typeof text === 'string' ? text.slice(0, MAX_TEXT) : fallback

export class SpecSandbox {
  /** Transpiled files and imported JSON texts: plain host data, shared by all entries. */
  private readonly transpiled = new Map<string, Transpiled>()
  private readonly texts = new Map<string, { ok: true, text: string } | { ok: false, message: string }>()
  private context!: vm.Context
  private functions = new Map<string, unknown>()
  private running: string[] = []
  private found: SpecError[] = []
  private outcome?: Outcome

  constructor (private readonly init: SandboxInit) {}

  /** Evaluate one TS file in a context of its own: the value it exports, as JSON text, or what went wrong. */
  evaluate (file: string, timeoutMs: number): Evaluation {
    this.found = []
    const own = this.transpile(file)
    if (own === undefined) return { ok: false, errors: this.found.splice(0) }
    if (own.errors.length > 0) return { ok: false, errors: own.errors }
    this.reset()
    try {
      new vm.Script(`__originRun(${JSON.stringify(file)})`, { filename: 'origin:run' })
        .runInContext(this.context, { timeout: timeoutMs })
    } catch (err) {
      const culprit = this.running.at(-1) ?? file
      if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
        return { ok: false, errors: [...this.found, { file: culprit, message: `ran past its ${timeoutMs} ms time limit` }] }
      }
      return { ok: false, errors: [...this.found, { file: culprit, message: `could not be evaluated: ${String(err)}` }] }
    }
    const outcome = this.outcome
    if (outcome === undefined) return { ok: false, errors: [...this.found, { file, message: 'could not be evaluated (the loader gave no outcome)' }] }
    if (outcome.ok) return { ok: true, json: outcome.json }
    if (outcome.reported) return { ok: false, errors: this.found }
    return { ok: false, errors: [...this.found, { ...this.locate(outcome.stack, file), message: outcome.message }] }
  }

  /** A fresh context for the next entry: nothing one spec file changed is seen by another. */
  private reset (): void {
    this.found = []
    this.running = []
    this.outcome = undefined
    this.functions = new Map()
    this.context = vm.createContext(Object.create(null), {
      name: 'origin spec',
      codeGeneration: { strings: false, wasm: false },
      microtaskMode: 'afterEvaluate'
    })
    const boot = new vm.Script(LOADER, { filename: 'origin:loader' }).runInContext(this.context) as (host: object, names: string) => void
    // Only primitives cross from the context to the host, and only host-made plain objects
    // (which the loader alone sees) cross back.
    boot({
      resolve: (from: string, id: string): Resolved => {
        // a host Error must not reach spec code (its constructor is the host's Function)
        try { return this.resolve(String(from), String(id)) } catch (err) { return { kind: 'error', message: String(err), reported: false } }
      },
      enter: (key: string) => { this.running.push(String(key)) },
      leave: () => { this.running.pop() },
      done: (json: unknown) => {
        this.outcome = typeof json === 'string' ? { ok: true, json } : { ok: false, message: 'exports a value JSON cannot hold', stack: '', loader: true, reported: false }
      },
      fail: (message: unknown, stack: unknown, loader: unknown, reported: unknown) => {
        this.outcome = { ok: false, message: clip(message, 'threw a value that cannot be described'), stack: clip(stack, ''), loader: loader === true, reported: reported === true }
      }
    }, DEFINE_NAMES.join(','))
  }

  /** The file transpiled (cached), or undefined with the reason in `found` if it may not be read. */
  private transpile (file: string): Transpiled | undefined {
    let t = this.transpiled.get(file)
    if (t === undefined) {
      const text = this.text(file)
      if (!text.ok) {
        this.found.push({ file, message: text.message })
        return undefined
      }
      t = transpile(file, text.text)
      this.transpiled.set(file, t)
    }
    return t
  }

  private text (file: string): { ok: true, text: string } | { ok: false, message: string } {
    let r = this.texts.get(file)
    if (r === undefined) {
      r = this.init.read(file)
      if (r.ok) r = { ok: true, text: r.text.replace(/^\uFEFF/, '') }
      this.texts.set(file, r)
    }
    return r
  }

  private resolve (from: string, id: string): Resolved {
    if (id === 'origin/spec') return { kind: 'spec' }
    const refused: Resolved = { kind: 'error', message: `may import only files of the spec repo and 'origin/spec', not ${JSON.stringify(id)}`, reported: false }
    if (!/^\.\.?(\/|$)/.test(id)) return refused
    const base = posix.normalize(posix.join(posix.dirname(from), id))
    if (base === '..' || base.startsWith('../')) return refused
    const candidates = /\.(ts|json)$/.test(base) ? [base] : [`${base}.ts`, `${base}.json`, `${base}/index.ts`]
    const key = candidates.find((c) => this.init.has(c))
    if (key === undefined) {
      const other = this.init.has(base) ? ` (${base} is neither .ts nor .json)` : ` (looked for ${candidates.join(', ')})`
      return { kind: 'error', message: `cannot find ${JSON.stringify(id)}${other}`, reported: false }
    }
    if (key.endsWith('.json')) {
      const text = this.text(key)
      if (!text.ok) return { kind: 'error', message: `cannot import ${key}: ${text.message}`, reported: false }
      const parsed = parseJson(text.text)
      if (!parsed.ok) {
        this.found.push({ file: key, line: parsed.line, column: parsed.column, message: parsed.message })
        return { kind: 'error', message: `${key} is not valid JSON`, reported: true }
      }
      return { kind: 'json', key, text: text.text }
    }
    const t = this.transpile(key)
    if (t === undefined) {
      if (key === from) return { kind: 'error', message: 'cannot be read', reported: true }
      const why = this.found.pop()
      return { kind: 'error', message: `cannot import ${key}: ${why?.message ?? 'it cannot be read'}`, reported: false }
    }
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
