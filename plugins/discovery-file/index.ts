/**
 * discovery-file: peers from a local file, watched. One `host:port` a line, `#` comments,
 * the format of the git method's peers file (node/discovery/peers.ts). What writes the file
 * is up to you: config management, a cron job, a sidecar that asks your cloud's API, an
 * operator with an editor. A change is seen at once (the directory is watched, so a file
 * replaced by rename counts) and at the latest after `intervalMs` (a backstop for file
 * systems that do not report changes, e.g. some network mounts). A missing file finds
 * nobody until it appears; a bad line is logged with its number and skipped.
 *
 * As the discovery layer (replacing the built-in methods; image.json's `seeds` still count):
 *   "layers": { "discovery": { "use": "discovery-file", "config": { "path": "/etc/origin/peers" } } }
 * Or alongside them, as a discovery plugin by path:
 *   "discovery": { "plugin": { "module": "/opt/origin/dist/plugins/discovery-file/index.js", "config": { "path": "/etc/origin/peers" } } }
 */
import { EventEmitter } from 'node:events'
import { watch, type FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { systemClock, type Timer } from '../../node/clock'
import { errorMessage } from '../../node/errors'
import { mergePeers, parsePeersFile, samePeers } from '../../node/discovery/peers'
import type { Discovery, DiscoveryComponents } from '../../node/discovery/types'

export interface FileDiscoveryInit {
  /** The peers file; a relative path is taken from the working directory. */
  path: string
  /** Longest a change goes unseen where the file system does not report it. @default 10000 */
  intervalMs?: number
  /** Addresses always included (image.json's `seeds`, passed by the node). @default [] */
  seeds?: string[]
}

export const fileDefaults = { intervalMs: 10_000 }

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['path'],
  properties: {
    path: { type: 'string', minLength: 1, maxLength: 4096 },
    intervalMs: { type: 'integer', minimum: 100, maximum: 3_600_000 }
  }
}

export function discovery (init: FileDiscoveryInit) {
  return (c: DiscoveryComponents): Discovery => new FileDiscovery(init, c)
}

class FileDiscovery implements Discovery {
  readonly events = new EventEmitter()
  readonly name: string
  private readonly path: string
  private found: string[] = []
  private watcher: FSWatcher | undefined
  private timer: Timer | undefined
  private lastProblem = ''
  private reading: Promise<void> | undefined
  private again = false

  constructor (private readonly init: FileDiscoveryInit, private readonly c: DiscoveryComponents) {
    if (typeof init.path !== 'string' || init.path === '') throw new Error('discovery-file needs config.path')
    this.path = resolve(init.path)
    this.name = `file ${this.path}`
  }

  peers (): string[] { return mergePeers([this.init.seeds ?? [], this.found]) }

  async start (): Promise<void> {
    await this.read()
    try {
      // The directory, not the file: editors and `mv` replace the file, which ends a watch on it.
      this.watcher = watch(dirname(this.path), (_event, name) => { if (name === null || name === basename(this.path)) this.schedule() })
      this.watcher.on('error', (err) => this.c.log.warn(`${this.name}: watch failed (${errorMessage(err)}); re-reading every ${this.interval} ms`))
    } catch (err) {
      this.c.log.warn(`${this.name}: cannot watch ${dirname(this.path)} (${errorMessage(err)}); re-reading every ${this.interval} ms`)
    }
    // The backstop re-read is on the node's clock; the watch reports changes as they happen.
    this.timer = (this.c.clock ?? systemClock).every(this.interval, () => this.schedule()).unref()
  }

  async stop (): Promise<void> {
    this.watcher?.close()
    this.watcher = undefined
    this.timer?.cancel()
    this.timer = undefined
    await this.reading
  }

  private get interval (): number { return this.init.intervalMs ?? fileDefaults.intervalMs }

  /** One read at a time; a change during a read reads once more after it. */
  private schedule (): void {
    if (this.reading !== undefined) { this.again = true; return }
    this.reading = this.read().finally(() => {
      this.reading = undefined
      if (this.again && this.timer !== undefined) { this.again = false; this.schedule() }
    })
  }

  private async read (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      this.problem(`cannot read it (${errorMessage(err)}); no peers from it until it can be read`)
      this.update([])
      return
    }
    const { peers, bad } = parsePeersFile(text)
    this.problem(bad.length === 0 ? '' : `skipped ${bad.map((b) => `line ${b.line} "${b.text}"`).join(', ')}: not host:port`)
    this.update(peers)
  }

  /** Logs a problem once, not at every re-read. */
  private problem (text: string): void {
    if (text !== '' && text !== this.lastProblem) this.c.log.warn(`${this.name}: ${text}`)
    this.lastProblem = text
  }

  private update (peers: string[]): void {
    if (samePeers(peers, this.found)) return
    this.found = peers
    this.c.log.info(`${this.name}: ${peers.length === 0 ? 'no peers' : peers.join(', ')}`)
    this.events.emit('change', this.peers())
  }
}
