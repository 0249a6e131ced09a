/**
 * What the REPL prints: results are plain data (so `-e` prints them as JSON) that render
 * as readable text tables in the interactive REPL through `util.inspect.custom`.
 */
import { inspect } from 'node:util'
import type { HubsView, NodeRow } from '../node/control'

export function textTable (headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

export function formatDuration (ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`
}

/** The member table: an array of rows, shown as a table. */
export class NodeTable extends Array<NodeRow> {
  static override get [Symbol.species] (): ArrayConstructor { return Array }

  static fromRows (rows: NodeRow[], at = Date.now()): NodeTable {
    const t = new NodeTable()
    t.push(...rows)
    Object.defineProperty(t, 'at', { value: at, enumerable: false })
    return t
  }

  [inspect.custom] (): string {
    const at = (this as unknown as { at: number }).at ?? Date.now()
    const rows = this.map((n) => [
      n.id,
      n.address,
      n.status,
      n.hub ? 'hub' : '',
      String(n.cpus),
      `${(n.memoryMb / 1024).toFixed(1)} GiB`,
      n.arch,
      n.status === 'alive' || n.status === 'suspect' ? formatDuration(at - n.startedAt) : '',
      Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',')
    ])
    return textTable(['id', 'address', 'status', 'role', 'cpus', 'memory', 'arch', 'uptime', 'labels'], rows)
  }
}

/** The hub set with the policy that chose it. */
export class HubSet {
  readonly hubs: string[]
  readonly policy: HubsView['policy']
  constructor (view: HubsView) {
    this.hubs = view.hubs
    this.policy = view.policy
  }

  [inspect.custom] (): string {
    const p = this.policy
    return `hubs: ${this.hubs.join(', ') || '(none)'}\npolicy: ${p.count} hubs, ranked by ${p.ranking.join(' > ')}, memory margin ${Math.round(p.memoryMargin * 100)}%`
  }
}
