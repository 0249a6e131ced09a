/**
 * Rejected spec versions, remembered across restarts in `DATA/spec/rejected.json`, so a
 * commit that was found bad (one that ran out of memory, say) is rejected at once with its
 * recorded reasons and never evaluated again while it sits at the remote's HEAD. An entry
 * holds for the limits it was judged under: raise a limit and the commit gets another look.
 *
 * The file is small and bounded (the latest `max` versions); a missing or unreadable file
 * is an empty list, never a reason not to start.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { writeJsonAtomic } from '../files'
import { dirname } from 'node:path'
import { errorMessage } from '../errors'

export interface RememberedRejection {
  version: string
  /** What the version was judged under (see `key` in the constructor). */
  key: string
  errors: string[]
  at: number
}

const MAX_ERRORS = 50
const MAX_ERROR_CHARS = 2000

export class RejectedVersions {
  private entries: RememberedRejection[] = []
  private writing: Promise<void> = Promise.resolve()

  /**
   * @param file where the list lives
   * @param key what a judgement depends on besides the files (the limits); entries with another key are ignored
   * @param max how many versions are kept (the oldest go first)
   */
  constructor (private readonly file: string, private readonly key: string, private readonly max = 100) {}

  /** Read the file; returns a problem to log (the list is then empty), or undefined. */
  async load (): Promise<string | undefined> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      return (err as { code?: string }).code === 'ENOENT' ? undefined : `cannot read ${this.file}: ${errorMessage(err)}`
    }
    try {
      const parsed = JSON.parse(text) as { rejected?: unknown }
      if (!Array.isArray(parsed.rejected)) throw new Error('no "rejected" list')
      this.entries = parsed.rejected.filter(isEntry).slice(-this.max)
      return undefined
    } catch (err) {
      return `ignoring ${this.file}: ${errorMessage(err)}`
    }
  }

  /** The remembered rejection of `version` under the current limits. */
  get (version: string): RememberedRejection | undefined {
    return this.entries.find((e) => e.version === version && e.key === this.key)
  }

  /** Remember `version` as rejected with `errors`, and write the file (writes are serialized; a failure is returned, not thrown). */
  async add (version: string, errors: string[], at = Date.now()): Promise<string | undefined> {
    const kept = errors.slice(0, MAX_ERRORS).map((e) => e.length > MAX_ERROR_CHARS ? e.slice(0, MAX_ERROR_CHARS) + '...' : e)
    this.entries = [...this.entries.filter((e) => e.version !== version), { version, key: this.key, errors: kept, at }].slice(-this.max)
    const value = { rejected: this.entries }
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

function isEntry (e: unknown): e is RememberedRejection {
  const x = e as Partial<RememberedRejection> | null
  return x !== null && typeof x === 'object' && typeof x.version === 'string' && typeof x.key === 'string' &&
    typeof x.at === 'number' && Array.isArray(x.errors) && x.errors.every((m) => typeof m === 'string')
}
