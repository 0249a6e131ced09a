/** Small file helpers: JSON written atomically, trees removed even when the app left them read-only. */
import { chmod, lstat, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Write JSON to `path` through a temp file and a rename: a crash leaves the old file or the new one, never half of one. */
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

export async function exists (path: string): Promise<boolean> {
  try { await lstat(path); return true } catch { return false }
}

/** `rm -rf`, first making directories writable (an app may leave a read-only tree). Symlinks are not followed. */
export async function removeTree (path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true })
    return
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES' && (err as NodeJS.ErrnoException).code !== 'EPERM') throw err
  }
  await makeWritable(path)
  await rm(path, { recursive: true, force: true })
}

async function makeWritable (path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined)
  if (st === undefined || !st.isDirectory()) return
  await chmod(path, 0o700)
  for (const name of await readdir(path)) await makeWritable(join(path, name))
}
