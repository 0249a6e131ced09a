/**
 * What the REPL prints: results are plain data (so `-e` prints them as JSON) that render
 * as readable text tables in the interactive REPL through `util.inspect.custom`.
 */
import { inspect } from 'node:util'
import type { HubsView, NodeRow, SpecView } from '../node/control'
import type { ServicesView } from '../node/control/services'
import type { SyncResult } from '../node/desired'
import { OriginError } from '../node/errors'
import { specRejectedError } from '../node/protocol/errors'

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
      [n.status, ...(n.unhealthy !== undefined ? ['unhealthy'] : []), ...(n.drained === true ? ['drained'] : [])].join(', '),
      n.hub ? 'hub' : '',
      String(n.cpus),
      `${(n.memoryMb / 1024).toFixed(1)} GiB`,
      n.arch,
      n.status === 'alive' || n.status === 'suspect' ? formatDuration(at - n.startedAt) : '',
      n.containment === 'process-group' ? 'process group (a process may outlive its instance)' : n.containment === 'pid-namespace' ? 'pid namespace' : '',
      Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',')
    ])
    const table = textTable(['id', 'address', 'status', 'role', 'cpus', 'memory', 'arch', 'uptime', 'contains', 'labels'], rows)
    // What an operator must not miss, one line each under the table: why a node says it is
    // unhealthy, and a certificate close to its end.
    const sick = this.filter((n) => n.unhealthy !== undefined).map((n) => `${n.id} unhealthy: ${n.unhealthy ?? ''} (its singletons move to healthy nodes)`)
    const warnings = this.filter((n) => n.certificate !== undefined && n.certificate.level !== 'ok').map((n) => `${n.id}: ${n.certificate?.message ?? ''}`)
    return [table, ...sick, ...warnings].join('\n')
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

const short = (v?: string): string => v === undefined ? '(none)' : v.startsWith('dir:') ? v : v.slice(0, 12)

/** `cluster.spec()`: what runs, where, and what was refused. */
export class SpecReport {
  readonly answeredBy: string
  readonly applied?: SpecView['applied']
  readonly nodes: SpecView['nodes']
  readonly lastRejected?: SpecView['lastRejected']
  readonly rollout: SpecView['rollout']
  readonly waiting: SpecView['waiting']
  /**
   * The last rejection as the node raised it: an OriginError (E_SPEC_INVALID) whose
   * `data.problems` says, for each problem, its file, line, JSON path and message.
   */
  readonly rejection?: OriginError
  constructor (v: SpecView) {
    this.answeredBy = v.answeredBy
    this.applied = v.applied
    this.nodes = v.nodes
    this.lastRejected = v.lastRejected
    // A node of an older version sends the lines only: the error is made of those.
    const r = v.lastRejected
    this.rejection = r === undefined ? undefined : r.error !== undefined ? OriginError.fromJSON(r.error) : specRejectedError(r)
    this.rollout = v.rollout
    this.waiting = v.waiting
  }

  [inspect.custom] (): string {
    const a = this.applied
    const lines = [a === undefined
      ? 'applied: (no spec yet)'
      : `applied: ${short(a.id)} "${a.message.split('\n')[0]}" by ${a.author}, ${a.date}`]
    lines.push('', textTable(['node', 'status', 'runs'], this.nodes.map((n) => [n.id, n.status, short(n.spec)])))
    if (this.waiting.length > 0) {
      lines.push('', 'rollout waiting:')
      for (const w of this.waiting) lines.push(`  ${w.instance} on ${w.node}: ${w.reason}`)
    }
    const r = this.lastRejected
    if (r !== undefined) {
      lines.push('', `last rejected: ${short(r.version)} "${r.info.message.split('\n')[0]}" by ${r.info.author}, at ${r.at}`)
      for (const e of r.errors) lines.push(`  ${e}`)
    }
    return lines.join('\n')
  }
}

/** `cluster.sync()`: one line per hub. */
export class SyncReport extends Array<SyncResult> {
  static override get [Symbol.species] (): ArrayConstructor { return Array }

  static fromResults (results: SyncResult[]): SyncReport {
    const r = new SyncReport()
    r.push(...results)
    return r
  }

  [inspect.custom] (): string {
    if (this.length === 0) return 'no hub answered'
    return this.map((r) => {
      const what = r.outcome === 'failed' ? `failed: ${r.error ?? ''}` : `${r.outcome} ${short(r.commit)}`
      return [`${r.node}: ${what}`, ...(r.errors ?? []).map((e) => `  ${e}`)].join('\n')
    }).join('\n')
  }
}

/** `cluster.services()` / `cluster.where(name)`: what runs where, and why not. */
export class ServicesReport {
  readonly phase?: ServicesView['phase']
  readonly services: ServicesView['services']
  constructor (v: ServicesView) {
    this.phase = v.phase
    this.services = v.services
  }

  [inspect.custom] (): string {
    const now = Date.now()
    const lines = [`phase: ${this.phase?.reason ?? 'no spec applied yet'}`]
    for (const s of this.services) {
      lines.push('', `${s.name} (${s.placement})`)
      if (s.instances.length > 0) {
        lines.push(textTable(['instance', 'node', 'address', 'status', 'restarts', 'uptime', 'why'], s.instances.map((i) => [
          i.instance, i.node, i.address ?? '', i.state, String(i.restarts ?? ''),
          i.startedAt !== undefined && (i.state === 'ready' || i.state === 'starting' || i.state === 'unhealthy') ? formatDuration(now - i.startedAt) : '',
          i.reason ?? ''
        ])).split('\n').map((l) => '  ' + l).join('\n'))
      }
      for (const i of s.instances) {
        if (i.rollout !== undefined) lines.push(`  new version of ${i.instance} on ${i.node} waits: ${i.rollout}`)
        if (i.stateNote !== undefined && i.stateNote !== '' && !/^(kept|starts empty \(first start)/.test(i.stateNote)) lines.push(`  state of ${i.instance}: ${i.stateNote}`)
      }
      for (const u of s.unschedulable) lines.push(`  unschedulable${u.instance === undefined ? '' : ` ${u.instance}`}: ${u.reason}`)
    }
    return lines.join('\n')
  }
}
