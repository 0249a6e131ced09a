/**
 * What the state layer remembers on disk, outside the instances' own directories (an app
 * can write anything in its directory; it cannot touch these):
 * - a marker per instance directory: the generation it holds and when it was last used;
 * - `seen.json`: the highest generation other members published for each instance, so a
 *   node that restarts still knows its old directories may be stale before gossip says so.
 */
import { mkdir } from 'node:fs/promises'
import type { Clock, Timer } from '../clock'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { readJson, writeJsonAtomic } from './files'
import type { StatePaths } from './paths'

export interface Marker {
  instance: string
  generation: number
  /** When an instance last started or stopped with this directory (ms since epoch, this node's clock). */
  updatedAt: number
}

function isGeneration (v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1
}

export async function readMarker (paths: StatePaths, instance: string): Promise<Marker | undefined> {
  const v = await readJson(paths.marker(instance)).catch(() => undefined) as Partial<Marker> | undefined
  if (v === undefined || !isGeneration(v.generation)) return undefined
  return { instance, generation: v.generation, updatedAt: typeof v.updatedAt === 'number' ? v.updatedAt : 0 }
}

export async function writeMarker (paths: StatePaths, m: Marker): Promise<void> {
  await mkdir(paths.metaDir, { recursive: true })
  await writeJsonAtomic(paths.marker(m.instance), m)
}

export interface Seen { generation: number, node: string }

/** The highest generation seen elsewhere, by instance; persisted a little after it changes. */
export class SeenStore {
  private readonly seen = new Map<string, Seen>()
  private timer?: Timer
  private writing: Promise<void> = Promise.resolve()

  constructor (private readonly paths: StatePaths, private readonly delayMs: number, private readonly log: Logger, private readonly clock: Clock) {}

  async load (): Promise<void> {
    let v: unknown
    try { v = await readJson(this.paths.seenFile) } catch (err) {
      this.log.warn(`cannot read ${this.paths.seenFile} (${errorMessage(err)}); starting from what gossip says`)
      return
    }
    if (typeof v !== 'object' || v === null) return
    for (const [instance, s] of Object.entries(v as Record<string, Partial<Seen>>)) {
      if (isGeneration(s?.generation) && typeof s.node === 'string') this.seen.set(instance, { generation: s.generation, node: s.node })
    }
  }

  get (instance: string): Seen | undefined { return this.seen.get(instance) }

  /** Remember `generation` for `instance` if it is higher than what is known. */
  observe (instance: string, generation: number, node: string): void {
    if (!isGeneration(generation)) return
    const had = this.seen.get(instance)
    if (had !== undefined && had.generation >= generation) return
    this.seen.set(instance, { generation, node })
    this.schedule()
  }

  private schedule (): void {
    if (this.timer !== undefined) return
    this.timer = this.clock.after(this.delayMs, () => { this.timer = undefined; void this.flush() }).unref()
  }

  /** Write now (and wait for a write under way). */
  async flush (): Promise<void> {
    this.timer?.cancel()
    this.timer = undefined
    this.writing = this.writing.then(async () => {
      try {
        await mkdir(this.paths.metaDir, { recursive: true })
        await writeJsonAtomic(this.paths.seenFile, Object.fromEntries(this.seen))
      } catch (err) {
        this.log.warn(`cannot write ${this.paths.seenFile}: ${errorMessage(err)}`)
      }
    })
    await this.writing
  }
}
