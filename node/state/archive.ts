/**
 * A directory as a stream of small items, so a state directory of any size crosses the
 * mesh in frames far below the 4 MiB bound:
 *
 *   head  { generation, takenAt, ageMs, mode }   what is sent, first
 *   dir   { p, m, t }                            a directory (always before what it holds)
 *   file  { p, m, t }  then data { d } ...       a file, its bytes in chunks of at most 256 KiB
 *   link  { p, to }                              a symlink; the target is kept as it is
 *   end   { files, dirs, links, bytes }          last: the receiver checks the counts
 *
 * `unpack` trusts nothing: every path is relative and normalized (no `/` at the start, no
 * `.`, `..` or empty segment), every parent is a directory the same archive created, files
 * are opened with O_EXCL | O_NOFOLLOW, so nothing is ever written through a symlink or
 * outside the target. It writes into a directory that must not exist yet and removes it if
 * anything is wrong: the caller renames it into place only once `unpack` returned.
 */
import { constants } from 'node:fs'
import { chmod, lstat, mkdir, open, readdir, readlink, symlink, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { OriginError } from '../errors'
import { removeTree } from './files'

/** Largest data chunk. */
export const CHUNK_BYTES = 256 * 1024

export interface ArchiveHead { k: 'head', v: 1, generation: number, takenAt: number, ageMs: number, mode: number }
export type ArchiveItem =
  | ArchiveHead
  | { k: 'dir', p: string, m: number, t: number }
  | { k: 'file', p: string, m: number, t: number }
  | { k: 'data', d: Uint8Array }
  | { k: 'link', p: string, to: string }
  | { k: 'end', files: number, dirs: number, links: number, bytes: number }

export interface ArchiveSummary { head: ArchiveHead, files: number, dirs: number, links: number, bytes: number }

/** The items of directory `root`: pre-order, names sorted. Sockets and fifos are left out; entries that vanish while it is read are skipped. */
export async function * pack (root: string, meta: { generation: number, takenAt: number, ageMs: number }): AsyncGenerator<ArchiveItem> {
  const rootStat = await lstat(root)
  if (!rootStat.isDirectory()) throw new OriginError('E_NOT_FOUND', `${root} is not a directory`, { path: root })
  yield { k: 'head', v: 1, ...meta, mode: rootStat.mode & 0o777 }
  const counts = { files: 0, dirs: 0, links: 0, bytes: 0 }
  yield * walk(root, '', counts)
  yield { k: 'end', ...counts }
}

async function * walk (root: string, rel: string, counts: { files: number, dirs: number, links: number, bytes: number }): AsyncGenerator<ArchiveItem> {
  let names: string[]
  try {
    names = (await readdir(join(root, rel))).sort()
  } catch (err) {
    if (rel !== '' && isGone(err)) return
    throw err
  }
  for (const name of names) {
    const p = rel === '' ? name : `${rel}/${name}`
    const abs = join(root, p)
    let st
    try { st = await lstat(abs) } catch (err) { if (isGone(err)) continue; throw err }
    if (st.isDirectory()) {
      counts.dirs++
      yield { k: 'dir', p, m: st.mode & 0o777, t: st.mtimeMs }
      yield * walk(root, p, counts)
    } else if (st.isSymbolicLink()) {
      let to: string
      try { to = await readlink(abs) } catch (err) { if (isGone(err)) continue; throw err }
      counts.links++
      yield { k: 'link', p, to }
    } else if (st.isFile()) {
      let fh
      try { fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW) } catch (err) { if (isGone(err)) continue; throw err }
      try {
        counts.files++
        yield { k: 'file', p, m: st.mode & 0o777, t: st.mtimeMs }
        for (;;) {
          const buf = Buffer.allocUnsafe(CHUNK_BYTES)
          const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, null)
          if (bytesRead === 0) break
          counts.bytes += bytesRead
          yield { k: 'data', d: bytesRead === CHUNK_BYTES ? buf : buf.subarray(0, bytesRead) }
        }
      } finally {
        await fh.close()
      }
    }
  }
}

function isGone (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP'
}

function bad (message: string, data: Record<string, unknown> = {}): OriginError {
  return new OriginError('E_PAYLOAD_INVALID', `state archive: ${message}`, data)
}

/** A path from an archive, or an error saying why it is refused. */
export function checkPath (p: unknown): string {
  if (typeof p !== 'string' || p.length === 0 || p.length > 4096) throw bad('an entry path is not a string of 1 to 4096 characters')
  if (p.includes('\0')) throw bad('an entry path contains a NUL byte')
  if (p.startsWith('/')) throw bad(`entry path "${p}" is absolute`, { path: p })
  for (const seg of p.split('/')) {
    if (seg === '..') throw bad(`entry path "${p}" climbs out with ".."`, { path: p })
    if (seg === '' || seg === '.') throw bad(`entry path "${p}" is not normalized`, { path: p })
  }
  return p
}

function checkMode (m: unknown): number {
  if (typeof m !== 'number' || !Number.isInteger(m) || m < 0 || m > 0o7777) throw bad('an entry mode is not an integer from 0 to 0o7777')
  return m & 0o777 // never setuid, setgid or sticky from a peer
}

function checkTime (t: unknown): number | undefined {
  return typeof t === 'number' && Number.isFinite(t) && t >= 0 ? t : undefined
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function count (v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad('a count is not a non-negative integer')
  return v
}

export function checkHead (v: unknown): ArchiveHead {
  if (!isObject(v) || v.k !== 'head') throw bad('the first item is not a head')
  if (v.v !== 1) throw bad(`unknown archive version ${String(v.v)}`)
  return { k: 'head', v: 1, generation: count(v.generation), takenAt: count(v.takenAt), ageMs: count(v.ageMs), mode: checkMode(v.mode) }
}

/**
 * Write the items into `into` (which must not exist) and return what was written. On any
 * error `into` is removed and the error is thrown: nothing half-written stays behind.
 */
export async function unpack (items: AsyncIterable<unknown>, into: string, limits: { maxBytes?: number } = {}): Promise<ArchiveSummary> {
  await mkdir(into, { mode: 0o700 })
  try {
    return await unpackInto(items, into, limits.maxBytes ?? Number.POSITIVE_INFINITY)
  } catch (err) {
    await removeTree(into)
    throw err
  }
}

async function unpackInto (items: AsyncIterable<unknown>, into: string, maxBytes: number): Promise<ArchiveSummary> {
  let head: ArchiveHead | undefined
  let summary: ArchiveSummary | undefined
  /** Paths the archive created, and whether each is a directory: a parent must be one. */
  const made = new Map<string, 'dir' | 'other'>()
  const dirs: Array<{ abs: string, m: number, t?: number }> = []
  const counts = { files: 0, dirs: 0, links: 0, bytes: 0 }
  let file: { fh: import('node:fs/promises').FileHandle, m: number, t?: number, abs: string } | undefined
  const closeFile = async (): Promise<void> => {
    if (file === undefined) return
    const f = file
    file = undefined
    await f.fh.chmod(f.m)
    await f.fh.close()
    if (f.t !== undefined) await utimes(f.abs, new Date(), new Date(f.t))
  }
  const place = (v: Record<string, unknown>, kind: 'dir' | 'other'): { p: string, abs: string } => {
    const p = checkPath(v.p)
    if (made.has(p)) throw bad(`entry path "${p}" appears twice`, { path: p })
    const slash = p.lastIndexOf('/')
    if (slash >= 0 && made.get(p.slice(0, slash)) !== 'dir') throw bad(`entry "${p}" comes before its directory, or its parent is not a directory`, { path: p })
    made.set(p, kind)
    return { p, abs: join(into, p) }
  }
  try {
    for await (const v of items) {
      if (summary !== undefined) throw bad('an item after the end')
      if (head === undefined) { head = checkHead(v); continue }
      if (!isObject(v)) throw bad('an item is not an object')
      if (v.k === 'data') {
        if (file === undefined) throw bad('data with no file open')
        const d = v.d
        if (!(d instanceof Uint8Array)) throw bad('data is not binary')
        if (d.length > CHUNK_BYTES) throw bad(`a data chunk of ${d.length} bytes is over ${CHUNK_BYTES}`)
        counts.bytes += d.length
        if (counts.bytes > maxBytes) throw bad(`more than ${maxBytes} bytes`, { maxBytes })
        await file.fh.write(d)
        continue
      }
      await closeFile()
      switch (v.k) {
        case 'dir': {
          const { abs } = place(v, 'dir')
          const m = checkMode(v.m)
          await mkdir(abs, { mode: 0o700 })
          dirs.push({ abs, m, t: checkTime(v.t) })
          counts.dirs++
          break
        }
        case 'file': {
          const { abs } = place(v, 'other')
          const m = checkMode(v.m)
          const fh = await open(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
          file = { fh, m, t: checkTime(v.t), abs }
          counts.files++
          break
        }
        case 'link': {
          const { abs } = place(v, 'other')
          const to = v.to
          if (typeof to !== 'string' || to.length === 0 || to.length > 4096 || to.includes('\0')) throw bad('a symlink target is not a string of 1 to 4096 characters')
          await symlink(to, abs)
          counts.links++
          break
        }
        case 'end': {
          const claimed = { files: count(v.files), dirs: count(v.dirs), links: count(v.links), bytes: count(v.bytes) }
          if (claimed.files !== counts.files || claimed.dirs !== counts.dirs || claimed.links !== counts.links || claimed.bytes !== counts.bytes) {
            throw bad(`the end says ${JSON.stringify(claimed)} but ${JSON.stringify(counts)} arrived`)
          }
          summary = { head, ...counts }
          break
        }
        default: throw bad(`unknown item kind ${JSON.stringify(v.k)}`)
      }
    }
  } finally {
    if (file !== undefined) await file.fh.close().catch(() => {})
  }
  if (head === undefined) throw bad('the stream was empty')
  if (summary === undefined) throw bad('the stream ended before the end item (incomplete transfer)')
  // Modes last, deepest first: a read-only directory must not stop its contents being written.
  for (const d of dirs.reverse()) {
    await chmod(d.abs, d.m)
    if (d.t !== undefined) await utimes(d.abs, new Date(), new Date(d.t))
  }
  await chmod(into, head.mode)
  return summary
}

/** Copy a directory locally through the same archive code (a snapshot, a restore from this node's own copy). */
export async function copyDir (from: string, into: string, meta: { generation: number, takenAt: number, ageMs: number }): Promise<ArchiveSummary> {
  return await unpack(pack(from, meta), into)
}
