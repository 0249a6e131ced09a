/**
 * Rejected spec versions, remembered across restarts in `DATA/spec/rejected.json`, so a
 * commit that was found bad (one that ran out of memory, say) is rejected at once with its
 * recorded reasons and never evaluated again while it sits at the remote's HEAD. An entry
 * holds for the limits it was judged under: raise a limit and the commit gets another look.
 *
 * Each entry keeps its problems as data (file, line, column, JSON path, message), so a
 * rejection remembered before a restart reaches the REPL with the same structure as a fresh
 * one. Files written before kept their lines only: those are read still, each line parsed
 * back into a problem where it can be (problems.ts).
 *
 * The file is small and bounded (the latest `max` versions); a missing or unreadable file
 * is an empty list, never a reason not to start.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { errorMessage } from '../errors'
import { writeJsonAtomic } from '../files'
import { schemaCheck } from '../validate'
import { problemFromLine, problemLine } from './problems'
import type { SpecError } from './types'

export interface RememberedRejection {
  version: string
  /** What the version was judged under (see `key` in the constructor). */
  key: string
  /** One line per problem (derived from `problems`; all that files written before problems were kept hold). */
  errors: string[]
  problems: SpecError[]
  at: number
}

/** An entry as stored: its problems, or in files written before they were kept, their lines only. */
type Stored = Omit<RememberedRejection, 'errors' | 'problems'> & { problems?: SpecError[], errors?: string[] }

const MAX_ERRORS = 50
const MAX_ERROR_CHARS = 2000

const text = { type: 'string' } as const
const problemSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['file', 'message'],
  properties: { file: text, line: { type: 'integer', minimum: 0 }, column: { type: 'integer', minimum: 0 }, path: text, message: text }
}
// Loaded when a node first reads its rejected.json, not when every node loads this module.
const isStored = schemaCheck<Stored>({
  type: 'object',
  required: ['version', 'key', 'at'],
  // The branches only say which one must be there; the properties below check both.
  anyOf: [{ required: ['problems'], properties: { problems: true } }, { required: ['errors'], properties: { errors: true } }],
  properties: { version: text, key: text, problems: { type: 'array', items: problemSchema }, errors: { type: 'array', items: text }, at: { type: 'number' } }
}, 'all')

/** An entry as read: problems kept, or parsed back from their lines where they can be. */
function remembered ({ version, key, at, problems, errors }: Stored): RememberedRejection {
  const all = problems ?? (errors ?? []).map(problemFromLine)
  return { version, key, errors: all.map(problemLine), problems: all, at }
}

export class RejectedVersions {
  private entries: RememberedRejection[] = []
  private writing: Promise<void> = Promise.resolve()

  /**
   * @param file where the list lives
   * @param key what a judgement depends on besides the files (the limits); entries with another key are ignored
   * @param max how many versions are kept (the oldest go first)
   */
  constructor (private readonly file: string, private readonly key: string, private readonly max = 100) {}

  /** Read the file; returns a problem to log (the list is then empty), or undefined. Malformed entries are dropped. */
  async load (): Promise<string | undefined> {
    let content: string
    try {
      content = await readFile(this.file, 'utf8')
    } catch (err) {
      return (err as { code?: string }).code === 'ENOENT' ? undefined : `cannot read ${this.file}: ${errorMessage(err)}`
    }
    try {
      const parsed = JSON.parse(content) as { rejected?: unknown }
      if (!Array.isArray(parsed.rejected)) throw new Error('no "rejected" list')
      this.entries = parsed.rejected.filter((e) => isStored()(e)).slice(-this.max).map(remembered)
      return undefined
    } catch (err) {
      return `ignoring ${this.file}: ${errorMessage(err)}`
    }
  }

  /** The remembered rejection of `version` under the current limits. */
  get (version: string): RememberedRejection | undefined {
    return this.entries.find((e) => e.version === version && e.key === this.key)
  }

  /** Remember `version` as rejected for `problems` at `at` (the node's clock), and write the file (writes are serialized; a failure is returned, not thrown). */
  async add (version: string, problems: SpecError[], at: number): Promise<string | undefined> {
    const kept = problems.slice(0, MAX_ERRORS).map(bounded)
    const entry = { version, key: this.key, errors: kept.map(problemLine), problems: kept, at }
    this.entries = [...this.entries.filter((e) => e.version !== version), entry].slice(-this.max)
    const value = { rejected: this.entries.map(({ errors, ...stored }): Stored => stored) }
    const write = this.writing.then(async () => {
      await mkdir(dirname(this.file), { recursive: true })
      await writeJsonAtomic(this.file, value)
    })
    this.writing = write.catch(() => {})
    try {
      await write
      return undefined
    } catch (err) {
      return `cannot write ${this.file}: ${errorMessage(err)}`
    }
  }
}

/** A problem whose strings are cut to a size the file can hold for a hundred versions. */
function bounded (p: SpecError): SpecError {
  const b: SpecError = { file: cut(p.file), message: cut(p.message) }
  if (p.line !== undefined) b.line = p.line
  if (p.column !== undefined) b.column = p.column
  if (p.path !== undefined) b.path = cut(p.path)
  return b
}

function cut (s: string): string {
  return s.length > MAX_ERROR_CHARS ? s.slice(0, MAX_ERROR_CHARS) + '...' : s
}
