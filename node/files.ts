/** Small file helpers shared by the layers: JSON read and written atomically. */
import { readFile, rename, writeFile } from 'node:fs/promises'

/** Write JSON to `path` through a temp file and a rename: a crash leaves the old file or the new one, never half of one. Mode 0600. */
export async function writeJsonAtomic (path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  await writeFile(tmp, JSON.stringify(value) + '\n', { mode: 0o600 })
  await rename(tmp, path)
}

/** The parsed JSON at `path`, undefined when it is missing; a file that does not parse is an error for the caller. */
export async function readJson (path: string): Promise<unknown> {
  let text: string
  try { text = await readFile(path, 'utf8') } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return JSON.parse(text)
}
