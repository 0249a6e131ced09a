/**
 * Log files that rotate by size (`x.log -> x.log.1 -> x.log.2 ...`): instance logs (every
 * line a supervised process prints, stamped with the time and the stream it came on), the
 * node's own log and the journal. Shared by the supervisor that writes them and the control
 * and journal layers that read them, so it belongs to none of them.
 *
 * @example
 *   const file = new RotatingLog({ path: 'web-1.log', maxBytes: 1 << 20, keep: 3 })
 *   const out = lineStamper('out', (line) => file.write(line))
 *   child.stdout.on('data', out).on('end', () => out.end())
 *   await readLog('web-1.log', { lines: 100 })   // '2026-11-22T16:30:00.123Z out hello\n...'
 */
import { closeSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { isoTime } from './clock'
import { logDefaults } from './config/defaults'

/** `out` and `err` are the process's own streams; `origin` lines are the supervisor's story. */
export type LogStream = 'out' | 'err' | 'origin'

/** A line longer than this is split: one runaway line must not hold the whole log in memory. */
export const MAX_LINE_BYTES = 64 * 1024

export interface RotatingLogOptions {
  /** The current file; rotated parts are `path.1` (newest) to `path.keep` (oldest). */
  path: string
  /** Rotate before a write would take the file past this size. @default 10 MiB */
  maxBytes?: number
  /** Rotated parts kept besides the current file; more history vs more disk. @default 5 */
  keep?: number
}

/**
 * Appends lines to a file and rotates it by size.
 *
 * Writes are synchronous (`writeSync` on a file opened for appending): lines land in the
 * order they were given, a rotation can never interleave with a write in flight, and no
 * line is lost if the node dies right after. The price is one blocking syscall per line,
 * small next to the pipe reads that produced it at the volumes processes log.
 * The file is opened on the first write, so `close()` followed by more writes reopens it.
 */
export class RotatingLog {
  readonly path: string
  private readonly maxBytes: number
  private readonly keep: number
  private fd: number | undefined
  private size = 0

  constructor (opts: RotatingLogOptions) {
    this.path = opts.path
    this.maxBytes = opts.maxBytes ?? logDefaults.maxBytes
    this.keep = opts.keep ?? logDefaults.keep
    if (!(this.maxBytes > 0)) throw new RangeError(`maxBytes must be positive, got ${this.maxBytes}`)
    if (!Number.isInteger(this.keep) || this.keep < 0) throw new RangeError(`keep must be a whole number >= 0, got ${this.keep}`)
  }

  /** Appends one line (a newline is added if missing). Throws if the file cannot be written. */
  write (line: string): void {
    const bytes = Buffer.from(line.endsWith('\n') ? line : line + '\n')
    let fd = this.fd ?? this.open()
    if (this.size > 0 && this.size + bytes.length > this.maxBytes) {
      this.rotate()
      fd = this.open()
    }
    let off = 0
    while (off < bytes.length) off += writeSync(fd, bytes, off)
    this.size += bytes.length
  }

  async close (): Promise<void> {
    if (this.fd === undefined) return
    const fd = this.fd
    this.fd = undefined
    closeSync(fd)
  }

  private open (): number {
    mkdirSync(dirname(this.path), { recursive: true })
    const fd = openSync(this.path, 'a')
    this.fd = fd
    this.size = statSync(this.path).size
    return fd
  }

  /** Closes the current file and shifts the parts up by one; the oldest falls off. */
  private rotate (): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    if (this.keep === 0) {
      rmSync(this.path, { force: true })
      return
    }
    rmSync(`${this.path}.${this.keep}`, { force: true })
    for (let i = this.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    renameSync(this.path, `${this.path}.1`)
  }
}

/** `2026-11-22T16:30:00.123Z out hello` */
export function stampLine (stream: LogStream, text: string, at: number = Date.now()): string {
  return `${isoTime(at)} ${stream} ${text}`
}

/** Takes a stream's chunks; `end()` flushes a last line that had no newline. */
export interface LineStamper {
  (chunk: Buffer): void
  end (): void
}

/**
 * Cuts a byte stream into lines and stamps each with the time it completed and the stream.
 * A partial line waits for the rest; a line over MAX_LINE_BYTES is emitted in pieces (cut on
 * a UTF-8 character boundary). A trailing `\r` is dropped.
 */
export function lineStamper (stream: LogStream, onLine: (line: string) => void, now: () => number = Date.now): LineStamper {
  let pending = Buffer.alloc(0)
  const emit = (bytes: Buffer): void => {
    let text = bytes.toString('utf8')
    if (text.endsWith('\r')) text = text.slice(0, -1)
    onLine(stampLine(stream, text, now()))
  }
  const feed = (chunk: Buffer): void => {
    const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let start = 0
    for (;;) {
      // Look for a newline only as far as the longest line: a huge line is not rescanned.
      const nl = buf.subarray(start, start + MAX_LINE_BYTES + 1).indexOf(10)
      if (nl === -1) {
        if (buf.length - start <= MAX_LINE_BYTES) break
        const cut = charBoundary(buf, start, start + MAX_LINE_BYTES)
        emit(buf.subarray(start, cut))
        start = cut
        continue
      }
      if (nl > MAX_LINE_BYTES) {
        const cut = charBoundary(buf, start, start + MAX_LINE_BYTES)
        emit(buf.subarray(start, cut))
        start = cut
        continue
      }
      emit(buf.subarray(start, start + nl))
      start += nl + 1
    }
    // Copy so the rest of a big chunk is not kept alive by a short tail.
    pending = Buffer.from(buf.subarray(start))
  }
  return Object.assign(feed, {
    end (): void {
      if (pending.length > 0) emit(pending)
      pending = Buffer.alloc(0)
    }
  })
}

/** The last position <= `at` (and > `start`) that does not split a UTF-8 character. */
function charBoundary (buf: Buffer, start: number, at: number): number {
  let i = at
  while (i > start && (buf[i]! & 0xc0) === 0x80) i--
  return i === start ? at : i
}

/** The names in `dir`; none when it does not exist (yet). */
export async function namesIn (dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

/** The log's files that exist, oldest first: `x.log.5`, ..., `x.log.1`, `x.log`. */
export async function logParts (path: string): Promise<string[]> {
  const dir = dirname(path)
  const base = basename(path)
  const names = await namesIn(dir)
  const rotated: Array<{ n: number, name: string }> = []
  for (const name of names) {
    if (!name.startsWith(base + '.')) continue
    const suffix = name.slice(base.length + 1)
    if (/^[1-9][0-9]*$/.test(suffix)) rotated.push({ n: Number(suffix), name })
  }
  rotated.sort((a, b) => b.n - a.n)
  const parts = rotated.map((r) => join(dir, r.name))
  if (names.includes(base)) parts.push(join(dir, base))
  return parts
}

export interface ReadLogOptions {
  /** Keep only the last N lines. @default all */
  lines?: number
  /** Keep only lines stamped at or after this time. @default all */
  since?: Date
}

/**
 * The log as one text, oldest line first, across the rotated parts. Parts are read newest
 * first and reading stops once the asked-for lines are in hand, so `{ lines: 100 }` on a
 * long history reads only the last part or two. A line without a timestamp (not written by
 * RotatingLog) goes with the line before it.
 */
export async function readLog (path: string, opts: ReadLogOptions = {}): Promise<string> {
  const since = opts.since?.getTime()
  const want = opts.lines
  if (want !== undefined && (!Number.isInteger(want) || want < 0)) throw new RangeError(`lines must be a whole number >= 0, got ${want}`)
  const parts = await logParts(path)
  let kept: string[] = []
  for (let i = parts.length - 1; i >= 0; i--) {
    if (want !== undefined && kept.length >= want) break
    let text: string
    try {
      text = await readFile(parts[i]!, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue // rotated away meanwhile
      throw err
    }
    const lines = text.split('\n')
    if (lines[lines.length - 1] === '') lines.pop()
    const { keptLines, olderSeen } = filterSince(lines, since)
    kept = keptLines.concat(kept)
    if (olderSeen) break // earlier parts are older still
  }
  if (want !== undefined) kept = want === 0 ? [] : kept.slice(-want)
  return kept.length === 0 ? '' : kept.join('\n') + '\n'
}

const stampRe = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z /

function filterSince (lines: string[], since: number | undefined): { keptLines: string[], olderSeen: boolean } {
  if (since === undefined) return { keptLines: lines, olderSeen: false }
  const keptLines: string[] = []
  let olderSeen = false
  let keep = true
  for (const line of lines) {
    const at = stampRe.test(line) ? Date.parse(line.slice(0, line.indexOf(' '))) : NaN
    if (!Number.isNaN(at)) keep = at >= since
    if (keep) keptLines.push(line)
    else olderSeen = true
  }
  return { keptLines, olderSeen }
}
