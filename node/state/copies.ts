/**
 * The snapshots this node holds: its own (of instances it runs with mode replicate) and the
 * copies other nodes asked it to keep. One directory per snapshot,
 * `state-copies/<instance>/g<generation>-t<takenAt>/{data/, meta.json}`, made under a
 * temp name and renamed into place when complete, so a reader sees whole snapshots only.
 * Older snapshots are removed once nobody is reading them.
 *
 * Ages are kept clock-free across nodes: the sender says how old the snapshot is by its
 * own clock (`ageMs` in the archive head) and the holder adds the time since it received it
 * by its own clock.
 */
import { mkdir, readdir, rename } from 'node:fs/promises'
import { join } from 'node:path'
import type { ArchiveSummary } from './archive'
import { exists, readJson, removeTree, writeJsonAtomic } from './files'
import { KeyedLock } from './lock'
import type { StatePaths } from './paths'

export interface CopyMeta {
  instance: string
  generation: number
  /** When the snapshot was taken, by the clock of `source`. */
  takenAt: number
  /** The node that took it. */
  source: string
  /** Its age when this node received it (the source's clock difference). */
  ageAtReceipt: number
  /** When this node received it, by this node's clock. */
  receivedAt: number
  bytes: number
  files: number
}

export interface HeldCopy { dir: string, meta: CopyMeta }

const NAME = /^g(\d+)-t(\d+)$/

function newer (a: { generation: number, takenAt: number }, b: { generation: number, takenAt: number }): boolean {
  return a.generation > b.generation || (a.generation === b.generation && a.takenAt > b.takenAt)
}

export class CopyStore {
  private readonly lock = new KeyedLock()
  private readonly readers = new Map<string, number>()

  constructor (private readonly paths: StatePaths, private readonly now: () => number) {}

  ageMs (meta: CopyMeta): number { return Math.max(0, meta.ageAtReceipt + this.now() - meta.receivedAt) }

  /** The newest whole snapshot of `instance` held here. */
  async current (instance: string): Promise<HeldCopy | undefined> {
    const root = this.paths.copies(instance)
    let names: string[]
    try { names = await readdir(root) } catch { return undefined }
    let best: { name: string, generation: number, takenAt: number } | undefined
    for (const name of names) {
      const m = NAME.exec(name)
      if (m === null) continue
      const s = { name, generation: Number(m[1]), takenAt: Number(m[2]) }
      if (best === undefined || newer(s, best)) best = s
    }
    if (best === undefined) return undefined
    const meta = await readJson(join(root, best.name, 'meta.json')).catch(() => undefined) as CopyMeta | undefined
    if (meta === undefined || typeof meta.generation !== 'number') return undefined
    return { dir: join(root, best.name, 'data'), meta }
  }

  /** Instances this node holds a snapshot of. */
  async instances (): Promise<string[]> {
    let names: string[]
    try { names = await readdir(this.paths.copiesRoot) } catch { return [] }
    const out: string[] = []
    for (const name of names) {
      if (name.startsWith('.')) continue
      const held = await this.currentByDir(join(this.paths.copiesRoot, name))
      if (held !== undefined) out.push(held)
    }
    return out
  }

  private async currentByDir (dir: string): Promise<string | undefined> {
    const names = await readdir(dir).catch(() => [] as string[])
    for (const n of names.filter((x) => NAME.test(x))) {
      const meta = await readJson(join(dir, n, 'meta.json')).catch(() => undefined) as CopyMeta | undefined
      if (typeof meta?.instance === 'string') return meta.instance
    }
    return undefined
  }

  /** Whether a snapshot of (generation, takenAt) would be newer than what is held. */
  async wants (instance: string, s: { generation: number, takenAt: number }): Promise<boolean> {
    const held = await this.current(instance)
    return held === undefined || newer(s, held.meta)
  }

  /**
   * Store a snapshot if it is newer than the one held: `fill(dataDir)` writes it (into a
   * directory that does not exist yet) and says what it wrote. A failed fill leaves what was
   * held untouched.
   */
  async store (
    instance: string,
    s: { generation: number, takenAt: number, source: string },
    fill: (dataDir: string) => Promise<ArchiveSummary>
  ): Promise<{ stored: boolean, reason: string }> {
    return await this.lock.run(instance, async () => {
      if (!await this.wants(instance, s)) return { stored: false, reason: 'holds this snapshot or a newer one' }
      const root = this.paths.copies(instance)
      await mkdir(root, { recursive: true })
      const tmp = this.paths.temp(root)
      await mkdir(tmp, { mode: 0o700 })
      try {
        const summary = await fill(join(tmp, 'data'))
        // What arrived, not what was offered: the sender may have taken a newer one meanwhile.
        const { generation, takenAt, ageMs } = summary.head
        if (!await this.wants(instance, { generation, takenAt })) { await removeTree(tmp); return { stored: false, reason: 'holds this snapshot or a newer one' } }
        const meta: CopyMeta = {
          instance, generation, takenAt, source: s.source, ageAtReceipt: ageMs, receivedAt: this.now(), bytes: summary.bytes, files: summary.files
        }
        await writeJsonAtomic(join(tmp, 'meta.json'), meta)
        const final = join(root, `g${generation}-t${takenAt}`)
        if (await exists(final)) { await removeTree(tmp); return { stored: false, reason: 'holds this snapshot already' } }
        await rename(tmp, final)
      } catch (err) {
        await removeTree(tmp)
        throw err
      }
      await this.prune(instance)
      return { stored: true, reason: 'stored' }
    })
  }

  /** Hold the newest snapshot for reading; it is not removed until `release`. */
  async acquire (instance: string): Promise<(HeldCopy & { release: () => void }) | undefined> {
    const held = await this.current(instance)
    if (held === undefined) return undefined
    this.readers.set(held.dir, (this.readers.get(held.dir) ?? 0) + 1)
    let released = false
    return {
      ...held,
      release: () => {
        if (released) return
        released = true
        const n = (this.readers.get(held.dir) ?? 1) - 1
        if (n <= 0) this.readers.delete(held.dir)
        else this.readers.set(held.dir, n)
        void this.lock.run(instance, async () => await this.prune(instance)).catch(() => {})
      }
    }
  }

  /** Remove everything but the newest snapshot, except what is being read, and leftovers of interrupted transfers. Call under the lock. */
  private async prune (instance: string): Promise<void> {
    const root = this.paths.copies(instance)
    const cur = await this.current(instance)
    const names = await readdir(root).catch(() => [] as string[])
    for (const name of names) {
      const dir = join(root, name)
      if (cur !== undefined && join(dir, 'data') === cur.dir) continue
      if (this.readers.has(join(dir, 'data'))) continue
      // Temp dirs too: prune runs under the instance's lock, so no store of it is under way.
      if (NAME.test(name) || name.startsWith('.tmp-')) await removeTree(dir).catch(() => {})
    }
  }
}
