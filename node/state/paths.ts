/**
 * Where the state layer keeps things under the node's data directory:
 *
 *   state/<name>/                      an instance's directory (ORIGIN_STATE_DIR)
 *   state/<name>.stale-g<G>-<time>/    a directory found stale, moved aside (never deleted)
 *   state/.meta/<name>.json            its marker: { generation, updatedAt } (out of the app's reach)
 *   state/.meta/seen.json              the highest generation other members published, by instance
 *   state/.tmp-*                       transfers in progress (renamed into place when complete)
 *   state-copies/<name>/g<G>-t<T>/     snapshots: { data/, meta.json }, this node's own and other nodes'
 *
 * `<name>` is the instance id made safe for a file name (see `safeName`).
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { isoTime } from '../clock'

/**
 * An instance id as one path segment: letters, digits, `_`, `@` and `-` stay, every other
 * byte becomes `%XX` (so `.` and `/` never appear: no `..`, no hidden names, no clash with
 * the `.stale-` and `.tmp-` names beside it). Injective; ids too long for a file name are
 * hashed.
 */
export function safeName (instance: string): string {
  const out = Array.from(Buffer.from(instance, 'utf8'), (b) => {
    const c = String.fromCharCode(b)
    return /[A-Za-z0-9_@-]/.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0')
  }).join('')
  if (out.length === 0) return '%'
  if (out.length <= 150) return out
  return `${out.slice(0, 100)}%${createHash('sha256').update(instance).digest('hex').slice(0, 32)}`
}

export class StatePaths {
  constructor (readonly dataDir: string) {}
  get stateRoot (): string { return join(this.dataDir, 'state') }
  get metaDir (): string { return join(this.stateRoot, '.meta') }
  get copiesRoot (): string { return join(this.dataDir, 'state-copies') }
  get seenFile (): string { return join(this.metaDir, 'seen.json') }
  live (instance: string): string { return join(this.stateRoot, safeName(instance)) }
  marker (instance: string): string { return join(this.metaDir, `${safeName(instance)}.json`) }
  copies (instance: string): string { return join(this.copiesRoot, safeName(instance)) }
  /** Where a stale directory goes: beside it, named by its generation and the time it was found stale. */
  stale (instance: string, generation: number, at: number): string {
    const stamp = isoTime(at).replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
    return join(this.stateRoot, `${safeName(instance)}.stale-g${generation}-${stamp}`)
  }

  temp (parent: string): string {
    return join(parent, `.tmp-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`)
  }
}
