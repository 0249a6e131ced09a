/**
 * Evaluates the spec repo's TS files, inside the evaluator process (evaluator-child.ts; the
 * node never loads this file): each entry file is transpiled with TypeScript here and run
 * on a thread of its own (sandbox-thread.ts) in a fresh `vm` context under a CPU time
 * limit, able to `require` only other files of
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
import { getHeapStatistics } from 'node:v8'
import { typescript } from '../typescript'
import * as define from './define'
import { parseJson } from './json'
import { type FromThread, type Resolution, type SandboxThread, type ToThread, startSandboxThread } from './sandbox-thread'
import type { SpecError } from './types'

export interface SandboxInit {
  /** Whether the spec repo has this file (contents are read only when imported). */
  has: (path: string) => boolean
  /** The text of a file of the spec repo, or why it may not be read. Called once a file. */
  read: (path: string) => { ok: true, text: string } | { ok: false, message: string }
}

/** One entry file's exported value as JSON text, or what went wrong. */
export type Evaluation = { ok: true, json: string } | { ok: false, errors: SpecError[] }

interface Transpiled { js: string, map?: SourceMap, errors: SpecError[] }

/** Longest message or stack taken from spec code: an error message is not a data channel. */
const MAX_TEXT = 4000
/** How often the CPU time of a running file is checked. */
const CPU_CHECK_MS = 20

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

/** This process's CPU time (every thread's, user and system), ms. */
function cpuMs (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

export class SpecSandbox {
  /** Transpiled files and imported JSON texts: plain data, shared by all entries. */
  private readonly transpiled = new Map<string, Transpiled>()
  private readonly texts = new Map<string, { ok: true, text: string } | { ok: false, message: string }>()
  private thread?: { thread: SandboxThread, online: Promise<unknown> }
  /** A thread being terminated: the next one starts once it is gone (see prepare). */
  private ending?: Promise<unknown>
  private running: string[] = []
  private found: SpecError[] = []

  constructor (private readonly init: SandboxInit) {}

  /** Starts the thread spec code runs on, so that the first file's time does not include it. */
  async prepare (): Promise<SandboxThread> {
    // Each thread reserves address space for its code (128 MiB), which the process's limit
    // counts: two at once would not fit, so a terminated one is gone before the next starts.
    await this.ending
    if (this.thread === undefined) {
      const thread = startSandboxThread({ loader: LOADER, prefix: PREFIX, defineNames: DEFINE_NAMES.join(','), maxText: MAX_TEXT, heapMb: this.heapMb() })
      this.thread = { thread, online: new Promise((resolve, reject) => { thread.worker.once('online', resolve).once('error', reject) }) }
    }
    await this.thread.online
    return this.thread.thread
  }

  /** The spec thread's heap limit: this process's (the node sets it from the memory limit). */
  private heapMb (): number {
    return Math.floor(getHeapStatistics().heap_size_limit / 1024 / 1024)
  }

  /**
   * Evaluate one TS file in a context of its own: the value it exports, as JSON text, or
   * what went wrong. `timeoutMs` is CPU time (this process's, so transpiling an import
   * counts): a machine whose CPUs are busy elsewhere slows a spec down without failing it.
   * (Real time is bounded by the node, which kills this process.)
   */
  async evaluate (file: string, timeoutMs: number): Promise<Evaluation> {
    this.found = []
    this.running = []
    const own = this.transpile(file)
    if (own === undefined) return { ok: false, errors: this.found.splice(0) }
    if (own.errors.length > 0) return { ok: false, errors: own.errors }
    const ran = await this.run(file, timeoutMs)
    const culprit = this.running.at(-1) ?? file
    if (ran === 'cpu') return { ok: false, errors: [...this.found, { file: culprit, message: `ran past its ${timeoutMs} ms time limit` }] }
    if (ran.error !== undefined) {
      return { ok: false, errors: [...this.found, { file: culprit, message: `could not be evaluated: ${ran.error}` }] }
    }
    const outcome = ran.outcome
    if (outcome === undefined) return { ok: false, errors: [...this.found, { file, message: 'could not be evaluated (the loader gave no outcome)' }] }
    if (outcome.ok) return { ok: true, json: outcome.json }
    if (outcome.reported) return { ok: false, errors: this.found }
    return { ok: false, errors: [...this.found, { ...this.locate(outcome.stack, file), message: outcome.message }] }
  }

  /**
   * Runs `file` on the thread, answering its imports, until it reports or has used
   * `timeoutMs` of CPU time; then the thread is terminated and the next file gets a new one.
   */
  private async run (file: string, timeoutMs: number): Promise<Extract<FromThread, { t: 'ran' }> | 'cpu'> {
    const thread = await this.prepare()
    const started = cpuMs()
    return await new Promise((resolve, reject) => {
      const watch = setInterval(() => {
        if (cpuMs() - started <= timeoutMs) return
        end()
        this.thread = undefined
        this.ending = thread.worker.terminate()
        resolve('cpu')
      }, CPU_CHECK_MS)
      const onMessage = (m: FromThread): void => {
        if (m.t === 'enter') this.running.push(m.key)
        else if (m.t === 'leave') this.running.pop()
        else if (m.t === 'resolve') thread.answer(this.resolveSafely(m.from, m.id))
        else if (m.t === 'ran') {
          end()
          resolve(m)
        }
      }
      const onError = (err: Error): void => {
        end()
        this.thread = undefined
        reject(err)
      }
      const onExit = (code: number): void => { onError(new Error(`the spec thread ended (exit code ${code})`)) }
      const end = (): void => {
        clearInterval(watch)
        thread.worker.off('message', onMessage).off('error', onError).off('exit', onExit)
      }
      thread.worker.on('message', onMessage).on('error', onError).on('exit', onExit)
      thread.worker.postMessage({ t: 'run', file } satisfies ToThread)
    })
  }

  private resolveSafely (from: string, id: string): Resolution {
    try {
      return this.resolve(String(from), String(id))
    } catch (err) {
      return { kind: 'error', message: String(err), reported: false }
    }
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

  private resolve (from: string, id: string): Resolution {
    if (id === 'origin/spec') return { kind: 'spec' }
    const refused: Resolution = { kind: 'error', message: `may import only files of the spec repo and 'origin/spec', not ${JSON.stringify(id)}`, reported: false }
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
    return { kind: 'ts', key, js: t.js }
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
