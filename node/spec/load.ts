/**
 * A spec repo's files -> one validated `Spec`, or every error, each naming the file, the
 * line/column or JSON path, and what is wrong.
 *
 * Layout: `cluster.json` or `cluster.ts` at the root (exactly one); `services/<name>.json|ts`
 * (one service a file; subfolders of `services/` hold code, not specs); `ops/*.ts` (REPL
 * helpers, listed with their source, not run here); `plugins/**` (listed). Anything else is
 * ignored unless a TS spec imports it.
 *
 * @example
 *   const loaded = loadSpec(await readSpecDir('specs'))
 *   if (!loaded.ok) console.error(loaded.errors.map(formatSpecError).join('\n'))
 */
import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import { defaultHubPolicy } from '../hubs/types'
import { SpecSandbox } from './sandbox'
import { validateCluster, validateService, type SpecValidator } from './schema'
import type { ClusterSpec, ResolvedClusterSpec, ServiceSpec, Spec, SpecError, SpecFiles } from './types'

export { formatSpecError } from './types'
export type { Spec, SpecError, SpecFiles } from './types'

export interface LoadOptions {
  /** Time limit for evaluating one TS spec file with what it imports. @default 1000 */
  tsTimeoutMs?: number
}

export type LoadResult = { ok: true, spec: Spec } | { ok: false, errors: SpecError[] }

const SERVICE_NAME = /^[a-z][a-z0-9-]{0,62}$/

/** Validate a spec repo's files; collects the errors of all files rather than stopping at the first. */
export function loadSpec (files: SpecFiles, opts: LoadOptions = {}): LoadResult {
  const errors: SpecError[] = []
  let sandbox: SpecSandbox | undefined
  const text = (file: string): string => (files.get(file) ?? Buffer.alloc(0)).toString('utf8').replace(/^\uFEFF/, '')
  const jsonErrors = (file: string): SpecError[] => {
    const r = parseJson(text(file))
    return r.ok ? [] : [{ file, line: r.line, column: r.column, message: r.message }]
  }

  /** The file's value, parsed or evaluated, then validated; undefined (errors noted) if it is not good. */
  function read<T> (file: string, validate: SpecValidator<T>): T | undefined {
    let value: unknown
    if (file.endsWith('.json')) {
      const r = parseJson(text(file))
      if (!r.ok) {
        errors.push({ file, line: r.line, column: r.column, message: r.message })
        return undefined
      }
      value = r.value
    } else {
      sandbox ??= new SpecSandbox({ files, timeoutMs: opts.tsTimeoutMs, jsonErrors })
      const r = sandbox.evaluate(file)
      if (!r.ok) {
        errors.push(...r.errors)
        return undefined
      }
      value = r.value
    }
    const v = validate(value)
    if (v.ok) return v.value
    errors.push(...v.problems.map((p) => ({ file, path: p.path, message: p.message })))
    return undefined
  }

  const clusterFiles = ['cluster.json', 'cluster.ts'].filter((f) => files.has(f))
  if (clusterFiles.length === 0) {
    errors.push({ file: 'cluster.json', message: 'not found: the spec repo needs a cluster.json or a cluster.ts at its root' })
  } else if (clusterFiles.length === 2) {
    errors.push({ file: 'cluster.ts', message: 'cluster.json exists too: keep one of the two' })
  }
  const clusters = clusterFiles.map((f) => read<ClusterSpec>(f, validateCluster))

  const services: Record<string, ServiceSpec> = {}
  const serviceFiles = new Map<string, string>()
  for (const file of [...files.keys()].sort()) {
    const m = /^services\/([^/]+)\.(json|ts)$/.exec(file)
    if (m === null || file.endsWith('.d.ts')) continue
    const name = m[1]
    if (!SERVICE_NAME.test(name)) {
      errors.push({ file, message: `the service name "${name}" (the file name) must match ${String(SERVICE_NAME)}` })
    } else if (serviceFiles.has(name)) {
      errors.push({ file, message: `service "${name}" is defined by ${serviceFiles.get(name) ?? ''} too: keep one of the two` })
    }
    serviceFiles.set(name, serviceFiles.get(name) ?? file)
    const service = read<ServiceSpec>(file, validateService)
    if (service !== undefined && serviceFiles.get(name) === file) services[name] = service
  }

  const paths = [...files.keys()].sort()
  const ops = Object.fromEntries(paths.filter((f) => /^ops\/[^/]+\.ts$/.test(f) && !f.endsWith('.d.ts')).map((f) => [f, text(f)]))
  const plugins = paths.filter((f) => f.startsWith('plugins/'))

  if (errors.length > 0 || clusters.length !== 1 || clusters[0] === undefined) return { ok: false, errors: unique(errors) }
  return { ok: true, spec: { cluster: resolveCluster(clusters[0]), services, ops, plugins } }
}

/** A cluster spec with every default filled in. */
export function resolveCluster (c: ClusterSpec): ResolvedClusterSpec {
  return {
    name: c.name,
    minNodes: c.minNodes ?? 1,
    belowMinNodes: c.belowMinNodes ?? 'pause',
    hubs: {
      count: c.hubs?.count ?? defaultHubPolicy.count,
      ranking: c.hubs?.ranking ?? [...defaultHubPolicy.ranking],
      memoryMargin: c.hubs?.memoryMargin ?? defaultHubPolicy.memoryMargin
    },
    revokedSerials: (c.revokedSerials ?? []).map((s) => s.replace(/:/g, '').toLowerCase())
  }
}

function unique (errors: SpecError[]): SpecError[] {
  const seen = new Set<string>()
  return errors.filter((e) => {
    const key = JSON.stringify([e.file, e.line, e.column, e.path, e.message])
    return seen.has(key) ? false : (seen.add(key), true)
  })
}

export interface ReadSpecDirOptions {
  /** Refuse a directory whose files add up to more than this. @default 50 MiB */
  maxBytes?: number
}

const SKIPPED_DIRS = new Set(['.git', 'node_modules'])

/**
 * Read a working directory as SpecFiles (all files, recursively, except under `.git` and
 * `node_modules`). Symbolic links are skipped: a spec version is the files themselves.
 */
export async function readSpecDir (dir: string, opts: ReadSpecDirOptions = {}): Promise<SpecFiles> {
  const maxBytes = opts.maxBytes ?? 50 * 1024 * 1024
  const files: SpecFiles = new Map()
  let total = 0
  async function walk (rel: string): Promise<void> {
    const entries = await readdir(join(dir, rel), { withFileTypes: true })
    for (const e of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
      const path = rel === '' ? e.name : posix.join(rel, e.name)
      if (e.isDirectory()) {
        if (!SKIPPED_DIRS.has(e.name)) await walk(path)
      } else if (e.isFile()) {
        total += (await stat(join(dir, path))).size
        if (total > maxBytes) {
          throw new OriginError('E_SPEC_INVALID', `spec directory ${dir} holds more than ${Math.round(maxBytes / 1024 / 1024)} MB of files (reached at ${path}); keep large files out of the spec repo`, { dir, file: path })
        }
        files.set(path, await readFile(join(dir, path)))
      }
    }
  }
  try {
    await walk('')
  } catch (err) {
    if (err instanceof OriginError) throw err
    throw new OriginError('E_SPEC_INVALID', `cannot read spec directory ${dir}: ${errorMessage(err)}`, { dir })
  }
  return files
}

/** sha256 (hex) over the sorted paths and contents: names a spec version read from a directory. */
export function specDigest (files: SpecFiles): string {
  const hash = createHash('sha256')
  for (const path of [...files.keys()].sort()) {
    const content = files.get(path) ?? Buffer.alloc(0)
    hash.update(`${path}\0${content.length}\0`)
    hash.update(content)
  }
  return hash.digest('hex')
}

export type JsonParse = { ok: true, value: unknown } | { ok: false, line: number, column: number, message: string }

class JsonSyntax {
  constructor (readonly at: number, readonly message: string) {}
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y
const LITERALS: Array<[string, unknown]> = [['true', true], ['false', false], ['null', null]]

/**
 * Strict JSON with the line and column of the first error (JSON.parse's messages do not
 * carry a position on every Node version). Duplicate field names are an error too.
 */
export function parseJson (text: string): JsonParse {
  let i = 0
  const fail = (message: string, at = i): never => { throw new JsonSyntax(at, message) }
  const found = (): string => i >= text.length ? 'the end of the file' : JSON.stringify(text[i])
  const space = (): void => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++ }

  function string (): string {
    const start = i++
    for (;;) {
      if (i >= text.length) fail('unterminated string', start)
      const c = text.charCodeAt(i)
      if (c === 0x22) break
      if (c < 0x20) fail('a string cannot hold a raw line break or control character (write \\n)')
      if (c !== 0x5c) { i++; continue }
      const e = text[i + 1] ?? ''
      if (e === 'u' ? !/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6)) : e === '' || !'"\\/bfnrt'.includes(e)) fail('invalid escape sequence')
      i += e === 'u' ? 6 : 2
    }
    i++
    return JSON.parse(text.slice(start, i)) as string
  }

  function list<T> (close: string, what: string, item: () => T): T[] {
    const items: T[] = []
    i++
    space()
    if (text[i] === close) { i++; return items }
    for (;;) {
      items.push(item())
      space()
      if (text[i] === close) { i++; return items }
      if (text[i] !== ',') fail(`expected "," or "${close}" after ${what}, found ${found()}`)
      const comma = i++
      space()
      if (text[i] === close) fail('a trailing comma is not allowed in JSON', comma)
    }
  }

  function value (depth: number): unknown {
    if (depth > 256) fail('nested too deeply')
    space()
    const c = text[i]
    if (c === '"') return string()
    if (c === '[') return list(']', 'an array item', () => value(depth + 1))
    if (c === '{') {
      const obj: Record<string, unknown> = {}
      list('}', 'a field', () => {
        space()
        if (text[i] !== '"') fail(`expected a field name in double quotes, found ${found()}`)
        const at = i
        const key = string()
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate field ${JSON.stringify(key)}`, at)
        space()
        if (text[i] !== ':') fail(`expected ":" after the field name, found ${found()}`)
        i++
        // defineProperty: a field named "__proto__" stays a field
        Object.defineProperty(obj, key, { value: value(depth + 1), enumerable: true, writable: true, configurable: true })
      })
      return obj
    }
    NUMBER.lastIndex = i
    const n = NUMBER.exec(text)
    if (n !== null) { i += n[0].length; return Number(n[0]) }
    const literal = LITERALS.find(([word]) => text.startsWith(word, i))
    if (literal !== undefined) { i += literal[0].length; return literal[1] }
    return fail(i >= text.length ? 'unexpected end of the file' : `unexpected ${found()}`)
  }

  try {
    space()
    if (i >= text.length) fail('the file is empty')
    const v = value(0)
    space()
    if (i < text.length) fail(`unexpected ${found()} after the end of the JSON value`)
    return { ok: true, value: v }
  } catch (err) {
    if (!(err instanceof JsonSyntax)) throw err
    const before = text.slice(0, err.at)
    const line = before.split('\n').length
    return { ok: false, line, column: err.at - before.lastIndexOf('\n'), message: `invalid JSON: ${err.message}` }
  }
}
