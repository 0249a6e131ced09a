/**
 * Logs as operators fetch them: a service's logs on one node, found from the files in
 * DATA/logs, so an instance that stopped or moved away is still there (its files are kept
 * and rotated like the others), and `service: 'node'` is the node's own DATA/node.log.
 * Rotated parts come in order, optionally only recent lines, optionally followed as they
 * are written. The node an operator is connected to relays to the node that has them.
 *
 * @example
 *   for await (const item of localLogs({ dataDir, membership }, { node: 'a', service: 'web', follow: true }, signal)) {
 *     if ('caughtUp' in item) console.error('-- now following --')
 *     else process.stdout.write(item.text)
 *   }
 */
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { OriginError } from '../errors'
import type { Membership } from '../membership'
import { serviceOfInstance } from '../scheduler'
import { logParts, namesIn, readLog } from '../logfile'
import { compareInstances } from '../vocabulary'

export interface LogsRequest { node: string, service: string, lines?: number, since?: string, follow?: boolean }
/** A piece of one log, tagged with the instance that wrote it (`node` for the node log). */
export interface LogChunk { instance: string, text: string }
/** With follow: the history has been sent, what comes next is new. */
export interface CaughtUp { caughtUp: true }
export type LogItem = LogChunk | CaughtUp

/** The service whose logs `service: 'node'` stands for: the node's own log. */
export const NODE_LOG = 'node'

/** Only what the logs need: where the files are, and the member table for a helpful "not here". */
export interface LogsComponents { dataDir: string, membership: Pick<Membership, 'id' | 'table'> }

const CHUNK = 256 * 1024
const POLL_MS = 250

/** One log on this node: who wrote it and its current file (rotated parts are `path.N`). */
interface LogSource { instance: string, path: string }

/** How far a log has been sent: the file (by identity, so a rotation does not lose it) and the offset in it. */
interface Position { file?: string, offset: number }

/** This node's logs for `req.service`, chunked for the wire; with follow, new lines until `signal` aborts. */
export async function * localLogs (c: LogsComponents, req: LogsRequest, signal: AbortSignal): AsyncGenerator<LogItem> {
  const sources = await logSources(c.dataDir, req.service)
  if (sources.length === 0) throw notFound(c, req.service)
  const sent = new Map<string, Position>()
  const since = req.since === undefined ? undefined : new Date(req.since)
  for (const s of sources) {
    // Taken before reading: a line written meanwhile may come twice, never not at all.
    sent.set(s.instance, await newestPosition(s.path))
    yield * chunked(s.instance, await readLog(s.path, { lines: req.lines, since }))
  }
  if (req.follow !== true) return
  yield { caughtUp: true }
  while (!signal.aborted) {
    // Real time: it polls files on disk, which grow in real time whatever the node's clock.
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    if (signal.aborted) return
    // Listed again each time: an instance that starts here while following is picked up.
    for (const s of await logSources(c.dataDir, req.service)) {
      const from = sent.get(s.instance) ?? { offset: 0 }
      sent.set(s.instance, yield * appended(s, from))
    }
  }
}

/**
 * The logs of `service` in this node's data dir, instances in a stable order (`web-2`
 * before `web-10`). Instance files are `<service>-<n>.log` or `<service>@<node>.log`;
 * `build-<service>.log` belongs to no instance of `service`, so it only comes when asked
 * for by its own name.
 */
async function logSources (dataDir: string, service: string): Promise<LogSource[]> {
  if (service === NODE_LOG) {
    const path = join(dataDir, 'node.log')
    return (await logParts(path)).length > 0 ? [{ instance: NODE_LOG, path }] : []
  }
  const dir = join(dataDir, 'logs')
  const names = await namesIn(dir)
  const instances = new Set<string>()
  for (const name of names) {
    const m = /^(.+)\.log(\.[1-9][0-9]*)?$/.exec(name)
    if (m !== null && serviceOfInstance(m[1]!) === service) instances.add(m[1]!)
  }
  return [...instances].sort(byInstance).map((instance) => ({ instance, path: join(dir, `${instance}.log`) }))
}

// Instance order (web-2 before web-10), the same on every machine, unlike a locale's collation.
const byInstance = compareInstances

/** No log at all for that service here; says where it runs if the member table knows. */
function notFound (c: LogsComponents, service: string): OriginError {
  const self = c.membership.id
  if (service === NODE_LOG) return new OriginError('E_NOT_FOUND', `${self} has no node log`, { node: self, service })
  const runsOn = Object.values(c.membership.table())
    .filter((m) => (m.status === 'alive' || m.status === 'suspect') && Object.keys(m.instances ?? {}).some((i) => serviceOfInstance(i) === service))
    .map((m) => m.id)
    .sort(byInstance)
  const message = runsOn.includes(self)
    ? `${service} has not written a log on ${self} yet`
    : `${service} has never run on ${self}${runsOn.length > 0 ? `; it runs on ${runsOn.join(', ')}` : ''}`
  return new OriginError('E_NOT_FOUND', message, { node: self, service, runsOn })
}

function * chunked (instance: string, text: string): Generator<LogChunk> {
  for (let i = 0; i < text.length; i += CHUNK) yield { instance, text: text.slice(i, i + CHUNK) }
}

/** A file's identity: survives renames (rotation), differs for a new file even if it reuses the inode number. */
function identity (st: { dev: number, ino: number, birthtimeMs: number }): string {
  return `${st.dev}:${st.ino}:${st.birthtimeMs}`
}

/** The end of the log's newest part as it is now. */
async function newestPosition (path: string): Promise<Position> {
  const parts = await logParts(path)
  for (let i = parts.length - 1; i >= 0; i--) {
    const fh = await openIfThere(parts[i]!)
    if (fh === undefined) continue
    try {
      const st = await fh.stat()
      return { file: identity(st), offset: st.size }
    } finally {
      await fh.close()
    }
  }
  return { offset: 0 }
}

interface OpenPart { fh: FileHandle, file: string, size: number }

/**
 * What was written to the log since `from`: the rest of the file it was in (wherever
 * rotation moved it), then the newer parts. If that file is gone (rotated off the end, or
 * `from` is the start of a log that appeared while following), every part there is is new.
 * Whole lines only from the current file: a line being written waits for the next round.
 * Returns the new position.
 */
async function * appended (s: LogSource, from: Position): AsyncGenerator<LogChunk, Position> {
  const parts: OpenPart[] = [] // newest first, down to the file `from` is in
  try {
    for (const path of (await logParts(s.path)).reverse()) {
      const fh = await openIfThere(path)
      if (fh === undefined) continue // rotated meanwhile; the identities sort it out
      const st = await fh.stat()
      const part = { fh, file: identity(st), size: st.size }
      if (parts.some((p) => p.file === part.file)) { await fh.close(); continue }
      parts.push(part)
      if (part.file === from.file) break
    }
    let pos = from
    for (let k = parts.length - 1; k >= 0; k--) {
      const part = parts[k]!
      const start = part.file === from.file ? Math.min(from.offset, part.size) : 0
      const bytes = yield * readRange(s.instance, part, start, k === 0)
      pos = { file: part.file, offset: start + bytes }
    }
    return pos
  } finally {
    await Promise.all(parts.map(async (p) => await p.fh.close()))
  }
}

/**
 * Sends `part` from `start` to its size, cut at line ends so no line (nor character) is
 * split across chunks; returns the bytes sent. With `wholeLines` (the file being written),
 * a last line without its newline yet waits for the next round.
 */
async function * readRange (instance: string, part: OpenPart, start: number, wholeLines: boolean): AsyncGenerator<LogChunk, number> {
  let at = start
  while (at < part.size) {
    const buf = Buffer.alloc(Math.min(CHUNK, part.size - at))
    const { bytesRead } = await part.fh.read(buf, 0, buf.length, at)
    if (bytesRead === 0) break
    const more = at + bytesRead < part.size
    const lineEnd = buf.lastIndexOf(10, bytesRead - 1) + 1
    let end = bytesRead
    if (lineEnd > 0 && (more || wholeLines)) end = lineEnd
    else if (lineEnd === 0 && wholeLines && !more) break // a line still being written
    yield { instance, text: buf.subarray(0, end).toString() }
    at += end
    if (!more && end < bytesRead) break
  }
  return at - start
}

async function openIfThere (path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}
