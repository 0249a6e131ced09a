/**
 * A spec repo's files -> one validated `Spec`, or every error, each naming the file, the
 * line/column or JSON path, and what is wrong.
 *
 * Layout: `cluster.json` or `cluster.ts` at the root (exactly one); `services/<name>.json|ts`
 * (one service a file; subfolders of `services/` hold code, not specs); `ops/*.ts` (REPL
 * helpers, listed with their source, not run here); `plugins/**` (listed). Anything else is
 * ignored unless a TS spec imports it.
 *
 * JSON files are parsed here; TS files are evaluated in a separate process under the
 * limits of `SpecLimits` (evaluator.ts), which is started only for a spec that has TS
 * files. What it returns is JSON text, parsed and validated here like a JSON file.
 *
 * @example
 *   const loaded = await loadSpec(await readSpecDir('specs'))
 *   if (!loaded.ok) console.error(loaded.errors.map(formatSpecError).join('\n'))
 */
import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { OriginError, errorMessage } from '../errors'
import { defaultHubPolicy } from '../hubs/types'
import { evaluateTs, type EvaluateResult } from './evaluator'
import { parseJson } from './json'
import { formatBytes, specLimits, type SpecLimits } from './limits'
import { validateCluster, validateService, type SpecValidator } from './schema'
import type { ClusterSpec, ResolvedClusterSpec, ServiceSpec, Spec, SpecError, SpecFiles } from './types'

export { formatSpecError } from './types'
export type { Spec, SpecError, SpecFiles } from './types'
export { parseJson, type JsonParse } from './json'
export { defaultSpecLimits, specLimits, type SpecLimits } from './limits'

export interface LoadOptions {
  /** Time limit for running one TS spec file with what it imports (`limits.fileMs`). @default 1000 */
  tsTimeoutMs?: number
  /** What reading the spec may cost; see `SpecLimits` for each limit and its default. */
  limits?: Partial<SpecLimits>
  /** Called with the TS entry files just before the evaluator process is started for them. */
  onEvaluate?: (files: string[]) => void
}

export type LoadResult = { ok: true, spec: Spec } | { ok: false, errors: SpecError[] }

const SERVICE_NAME = /^[a-z][a-z0-9-]{0,62}$/
/** Deeper than this, an evaluated value is refused before the schema sees it. */
const MAX_DEPTH = 64

/**
 * Validate a spec repo's files; collects the errors of all files rather than stopping at
 * the first. Never throws for anything in the files: a spec that goes past a limit is an
 * error like any other. It throws (E_START_FAILED) only if the evaluator cannot be started.
 */
export async function loadSpec (files: SpecFiles, opts: LoadOptions = {}): Promise<LoadResult> {
  const limits = specLimits({ ...opts.limits, ...(opts.tsTimeoutMs === undefined ? {} : { fileMs: opts.tsTimeoutMs }) })
  const errors: SpecError[] = []
  const text = (file: string): string => (files.get(file) ?? Buffer.alloc(0)).toString('utf8').replace(/^\uFEFF/, '')

  const clusterFiles = ['cluster.json', 'cluster.ts'].filter((f) => files.has(f))
  const serviceEntries = [...files.keys()].sort().filter((f) => /^services\/[^/]+\.(json|ts)$/.test(f) && !f.endsWith('.d.ts'))
  const budget = new SpecBudget(files, limits)
  for (const file of [...clusterFiles, ...serviceEntries]) {
    const over = budget.take(file)
    if (over !== undefined) return { ok: false, errors: [{ file, message: over }] }
  }

  const tsEntries = [...clusterFiles, ...serviceEntries].filter((f) => f.endsWith('.ts'))
  let evaluated: EvaluateResult = { results: new Map() }
  if (tsEntries.length > 0) {
    opts.onEvaluate?.(tsEntries)
    const read = (path: string): { ok: true, text: string } | { ok: false, message: string } => {
      if (!files.has(path)) return { ok: false, message: 'not found' }
      const over = budget.take(path)
      return over === undefined ? { ok: true, text: text(path) } : { ok: false, message: over }
    }
    evaluated = await evaluateTs({ entries: tsEntries, paths: [...files.keys()], read, limits })
  }
  let stopReported = false

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
      const r = evaluated.results.get(file)
      if (r === undefined) {
        // not evaluated: the evaluator was stopped at this file, or before it
        if (evaluated.stopped?.file === file) { errors.push(evaluated.stopped); stopReported = true }
        return undefined
      }
      if (!r.ok) {
        errors.push(...(r.errors.length > 0 ? r.errors : [{ file, message: 'could not be evaluated' }]))
        return undefined
      }
      const parsed = evaluatedValue(r.json)
      if (typeof parsed === 'string') {
        errors.push({ file, message: parsed })
        return undefined
      }
      value = parsed.value
    }
    const v = validate(value)
    if (v.ok) return v.value
    errors.push(...v.problems.map((p) => ({ file, path: p.path, message: p.message })))
    return undefined
  }

  if (clusterFiles.length === 0) {
    errors.push({ file: 'cluster.json', message: 'not found: the spec repo needs a cluster.json or a cluster.ts at its root' })
  } else if (clusterFiles.length === 2) {
    errors.push({ file: 'cluster.ts', message: 'cluster.json exists too: keep one of the two' })
  }
  const clusters = clusterFiles.map((f) => read<ClusterSpec>(f, validateCluster))

  const services: Record<string, ServiceSpec> = {}
  const serviceFiles = new Map<string, string>()
  for (const file of serviceEntries) {
    const name = file.slice('services/'.length).replace(/\.(json|ts)$/, '')
    if (!SERVICE_NAME.test(name)) {
      errors.push({ file, message: `the service name "${name}" (the file name) must match ${String(SERVICE_NAME)}` })
    } else if (serviceFiles.has(name)) {
      errors.push({ file, message: `service "${name}" is defined by ${serviceFiles.get(name) ?? ''} too: keep one of the two` })
    }
    serviceFiles.set(name, serviceFiles.get(name) ?? file)
    const service = read<ServiceSpec>(file, validateService)
    if (service !== undefined && serviceFiles.get(name) === file) services[name] = service
    if (file.endsWith('.json')) await nextTurn() // JSON is parsed on the node's event loop: let it breathe between files
  }
  if (evaluated.stopped !== undefined && !stopReported) errors.push(evaluated.stopped)

  const paths = [...files.keys()].sort()
  const ops = Object.fromEntries(paths.filter((f) => /^ops\/[^/]+\.ts$/.test(f) && !f.endsWith('.d.ts')).map((f) => [f, text(f)]))
  const plugins = paths.filter((f) => f.startsWith('plugins/'))

  if (errors.length > 0 || clusters.length !== 1 || clusters[0] === undefined) return { ok: false, errors: unique(errors) }
  return { ok: true, spec: { cluster: resolveCluster(clusters[0]), services, ops, plugins } }
}

/** Counts the bytes of spec files read (each file once) against maxSpecBytes, and of TS files against maxTsBytes. */
class SpecBudget {
  private readonly taken = new Set<string>()
  private spec = 0
  private ts = 0

  constructor (private readonly files: SpecFiles, private readonly limits: SpecLimits) {}

  /** Count `file`; the reason it does not fit, or undefined. */
  take (file: string): string | undefined {
    if (this.taken.has(file)) return undefined
    const size = this.files.get(file)?.length ?? 0
    if (file.endsWith('.ts') && this.ts + size > this.limits.maxTsBytes) {
      return `too much TypeScript: the TS files of this spec add up to more than ${formatBytes(this.limits.maxTsBytes)} with this one (${formatBytes(size)}); keep large data out of the spec`
    }
    if (this.spec + size > this.limits.maxSpecBytes) {
      return `the spec files add up to more than ${formatBytes(this.limits.maxSpecBytes)} with this one (${formatBytes(size)}); keep large data out of the spec`
    }
    this.taken.add(file)
    this.spec += size
    if (file.endsWith('.ts')) this.ts += size
    return undefined
  }
}

/** What the evaluator sent for a file, parsed here from text and checked to be plain data of a sane depth (or why not). */
function evaluatedValue (json: string): { value: unknown } | string {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    return 'the evaluated value is not valid JSON'
  }
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number]
    if (v === null || typeof v !== 'object') continue
    if (depth >= MAX_DEPTH) return `the exported value is nested more than ${MAX_DEPTH} levels deep`
    for (const child of Object.values(v)) stack.push([child, depth + 1])
  }
  return { value }
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
    revokedSerials: (c.revokedSerials ?? []).map((s) => s.replace(/:/g, '').toLowerCase()),
    maxCommitMb: c.maxCommitMb ?? defaultMaxCommitMb,
    ...(c.operators === undefined ? {} : { operators: { eval: [...(c.operators.eval ?? [])] } }),
    ...(c.membership !== undefined
      ? { downing: { strategy: c.membership.strategy, afterMs: c.membership.downAfterMs, quorum: c.membership.quorum } }
      : c.downing === undefined ? {} : { downing: { ...c.downing } })
  }
}

/** The largest commit taken when no spec says otherwise. */
export const defaultMaxCommitMb = 64

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
