/**
 * Log downloads on the operator's machine. One node's log of a service goes to one file
 * (`LogDownload`); a whole service, every instance on every node, goes to a directory
 * (`downloadService`). Either is written aside and renamed into place once complete, so a
 * failed download leaves nothing and an earlier one stays as it was.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm, rmdir, stat, writeFile, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join, relative } from 'node:path'
import type { LogChunk, LogItem } from '../node/control/logs'
import { OriginError, asOriginError } from '../node/errors'

/**
 * One log download: written to a temp file beside the target (same directory, so the
 * rename is atomic) and renamed into place by `publish()`; `discard()` removes the temp
 * file and the directories this download created, if empty.
 */
export class LogDownload {
  private last: string | undefined
  private closed = false

  private constructor (readonly path: string, private readonly temp: string, private readonly fh: FileHandle, private readonly node: string, private readonly createdDir: string | undefined) {}

  static async create (path: string, node: string): Promise<LogDownload> {
    const createdDir = await mkdir(dirname(path), { recursive: true })
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.part`)
    return new LogDownload(path, temp, await open(temp, 'wx'), node, createdDir)
  }

  /** Appends a chunk, with a `# <instance> on <node>` line where the instance changes. */
  async write (c: LogChunk): Promise<void> {
    if (c.instance !== '' && c.instance !== this.last) {
      await this.fh.write(`# ${c.instance} on ${this.node}\n`)
      this.last = c.instance
    }
    await this.fh.write(c.text)
  }

  /** Puts the download in place; a file still open keeps being appended to under its new name. */
  async publish (): Promise<void> {
    await rename(this.temp, this.path)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.fh.close()
  }

  async discard (): Promise<void> {
    await this.close().catch(() => {})
    await rm(this.temp, { force: true })
    if (this.createdDir === undefined) return
    // Only the directories made for this download, innermost first, and only while empty.
    for (let dir = dirname(this.path); !relative(this.createdDir, dir).startsWith('..'); dir = dirname(dir)) {
      try { await rmdir(dir) } catch { return }
      if (dir === this.createdDir) return
    }
  }
}

/** Marks a directory as a service download, which a new download of the service may replace. */
const MARK = '.origin-service-logs'

export interface ServiceDownload {
  /** The directory: `<dir>/<service>`, holding `<node>/<instance>.log`. */
  path: string
  files: number
  bytes: number
  /** Nodes whose logs could not be fetched, and why. */
  problems: string[]
}

/**
 * Every instance of `service` on every node in `nodes`, into `<dir>/<service>/<node>/<instance>.log`.
 * A node where the service never ran is skipped; one that fails is reported in `problems`
 * while the others' logs are kept. Fails if no node had any.
 */
export async function downloadService (o: {
  dir: string
  service: string
  nodes: string[]
  open: (node: string) => Promise<AsyncIterable<LogItem>>
  progress?: (bytes: number, files: number) => void
}): Promise<ServiceDownload> {
  const path = join(o.dir, o.service)
  const earlier = await stat(path).catch(() => undefined)
  if (earlier !== undefined && await stat(join(path, MARK)).catch(() => undefined) === undefined) {
    throw new OriginError('E_ARGS', `${path} exists and is not a download of ${o.service}'s logs; move it, or give another { dir }`, { path })
  }
  await mkdir(o.dir, { recursive: true })
  const temp = join(o.dir, `.${o.service}.${randomBytes(6).toString('hex')}.part`)
  await mkdir(temp)
  let bytes = 0
  let files = 0
  const problems: string[] = []
  try {
    await writeFile(join(temp, MARK), `logs of ${o.service}, downloaded ${new Date().toISOString()}\n`)
    await Promise.all(o.nodes.map(async (node) => {
      const handles = new Map<string, FileHandle>()
      try {
        for await (const item of await o.open(node)) {
          if ('caughtUp' in item) continue
          let fh = handles.get(item.instance)
          if (fh === undefined) {
            await mkdir(join(temp, node), { recursive: true })
            fh = await open(join(temp, node, `${item.instance === '' ? o.service : item.instance}.log`), 'wx')
            handles.set(item.instance, fh)
            files++
          }
          await fh.write(item.text)
          bytes += Buffer.byteLength(item.text)
          o.progress?.(bytes, files)
        }
      } catch (err) {
        const e = asOriginError(err)
        if (e.code !== 'E_NOT_FOUND') problems.push(`${node}: ${e.message}`)
        files -= handles.size
        await Promise.all([...handles.values()].map(async (h) => await h.close().catch(() => {})))
        handles.clear()
        await rm(join(temp, node), { recursive: true, force: true })
      } finally {
        await Promise.all([...handles.values()].map(async (h) => await h.close()))
      }
    }))
    if (files === 0) {
      throw new OriginError(problems.length > 0 ? 'E_UNREACHABLE' : 'E_NOT_FOUND', problems.length > 0
        ? `no logs of ${o.service} could be fetched: ${problems.join('; ')}`
        : `${o.service} has no logs on any node (${o.nodes.join(', ')})`, { service: o.service, nodes: o.nodes })
    }
    if (earlier !== undefined) await rm(path, { recursive: true, force: true })
    await rename(temp, path)
    return { path, files, bytes, problems }
  } catch (err) {
    await rm(temp, { recursive: true, force: true })
    throw err
  }
}
