/**
 * Local directory mode: the spec is read from a working directory and read again when a
 * file changes (chokidar), with no git involved. Changes are debounced so an editor's
 * save-and-rename does not load a half-written tree. The debounce runs on the node's clock.
 */
import { systemClock, type Clock, type Timer } from '../clock'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { readSpecDir, specDigest, type SpecFiles } from './load'

export async function watchSpecDir (
  dir: string,
  onChange: (files: SpecFiles, version: string) => void,
  log: Logger,
  debounceMs = 100,
  clock: Clock = systemClock
): Promise<() => Promise<void>> {
  // Loaded here: only a node in directory mode watches files (chokidar is ~3 MiB of a node's memory).
  const { watch } = await import('chokidar')
  let timer: Timer | undefined
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
    timer?.cancel()
    timer = clock.after(debounceMs, () => { void load() })
  })
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()))
  // The first load runs in the background: a TS spec loads TypeScript, which takes a moment the node need not wait for.
  void load()
  return async () => { timer?.cancel(); await watcher.close() }
}
