/**
 * Local directory mode: the spec is read from a working directory and read again when a
 * file changes (chokidar), with no git involved. Changes are debounced so an editor's
 * save-and-rename does not load a half-written tree.
 */
import { watch } from 'chokidar'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { readSpecDir, specDigest, type SpecFiles } from './load'

export async function watchSpecDir (
  dir: string,
  onChange: (files: SpecFiles, version: string) => void,
  log: Logger,
  debounceMs = 100
): Promise<() => Promise<void>> {
  let timer: NodeJS.Timeout | undefined
  let last = ''
  const load = async (): Promise<void> => {
    try {
      const files = await readSpecDir(dir)
      const version = `dir:${specDigest(files).slice(0, 12)}`
      if (version === last) return
      last = version
      onChange(files, version)
    } catch (err) {
      log.warn(`cannot read the spec directory ${dir}: ${errorMessage(err)}`)
    }
  }
  const watcher = watch(dir, { ignoreInitial: true, ignored: (path) => /(^|[/\\])(\.git|node_modules)([/\\]|$)/.test(path) })
  watcher.on('all', () => {
    clearTimeout(timer)
    timer = setTimeout(() => { void load() }, debounceMs)
  })
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()))
  // The first load runs in the background: a TS spec loads TypeScript, which takes a moment the node need not wait for.
  void load()
  return async () => { clearTimeout(timer); await watcher.close() }
}
