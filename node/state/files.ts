/** Small file helpers: JSON written atomically, trees removed even when the app left them read-only. */
import { chmod, lstat, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'

export { readJson, writeJsonAtomic } from '../files'

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
