/** File modes of a spec read from a directory: which files are executable (git keeps only that bit). */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'

/** 0o755 for each of `paths` (relative to `dir`) that its owner may execute; plain files are left out. */
export async function executablesIn (dir: string, paths: Iterable<string>): Promise<Map<string, number>> {
  const modes = new Map<string, number>()
  await Promise.all([...paths].map(async (path) => {
    const st = await stat(join(dir, path)).catch(() => undefined)
    if (st !== undefined && (st.mode & 0o100) !== 0) modes.set(path, 0o755)
  }))
  return modes
}
