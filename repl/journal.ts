/**
 * The journal in the REPL: `cluster.events()` as time-ordered lines, `cluster.state()` as a
 * text a person reads without origin (and its JSON), `cluster.save(dir)` as a support
 * bundle, and the live lines (spec applied/rejected, rollout steps) printed above the prompt.
 */
import { inspect } from 'node:util'
import type { HubsView, NodeRow, SpecView } from '../node/control'
import type { EventsView, ReplayView } from '../node/control/events'
import type { ServicesView } from '../node/control/services'
import type { JournalEvent, Replayed } from '../node/journal'
import { formatDuration, textTable } from './render'

const indent = (text: string): string => text.split('\n').map((l) => '  ' + l).join('\n')
const shortVersion = (v?: string): string => v === undefined ? '(none)' : v.startsWith('dir:') ? v.slice(0, 16) : v.slice(0, 12)

export function eventLine (e: JournalEvent): string {
  return `${new Date(e.at).toISOString()}  ${e.node.padEnd(8)}  ${e.text}`
}

/** `cluster.events()`: entries of every node's journal, in time order; prints one line each. */
export class EventList extends Array<JournalEvent> {
  static override get [Symbol.species] (): ArrayConstructor { return Array }

  static fromView (v: EventsView): EventList {
    const l = new EventList()
    l.push(...v.events)
    Object.defineProperty(l, 'unreachable', { value: v.unreachable, enumerable: false })
    return l
  }

  /** Members whose journal could not be read, and why. */
  get unreachable (): EventsView['unreachable'] { return [] }

  [inspect.custom] (): string {
    const lines = this.length === 0 ? ['(no events)'] : this.map(eventLine)
    for (const u of this.unreachable) lines.push(`(${u.node}: journal not read: ${u.reason})`)
    return lines.join('\n')
  }
}

/** The cluster now, as the REPL gathers it. */
export interface StateNow {
  kind: 'now'
  at: string
  answeredBy: string
  nodes: NodeRow[]
  hubs: HubsView
  spec: SpecView
  services: ServicesView
  events: JournalEvent[]
}

/** The cluster at a past moment, replayed from the journals. */
export interface StateAt { kind: 'at', at: string, answeredBy: string, replayed: Replayed, events: JournalEvent[], unreachable: ReplayView['unreachable'] }

/** `cluster.state()`: the JSON as fields, the text through `toString()` and in the REPL. */
export class StateReport {
  constructor (readonly state: StateNow | StateAt) {}
  toString (): string { return this.state.kind === 'now' ? nowText(this.state) : atText(this.state) }
  toJSON (): StateNow | StateAt { return this.state }
  [inspect.custom] (): string { return this.toString() }
}

function nowText (s: StateNow): string {
  const at = Date.parse(s.at)
  const lines = [`origin cluster state at ${s.at} (as node ${s.answeredBy} sees it)`, '', `phase: ${s.services.phase?.reason ?? 'no spec applied yet'}`, '', `members (${s.nodes.length}):`]
  lines.push(indent(textTable(['id', 'address', 'status', 'hub', 'cpus', 'memory', 'arch', 'uptime', 'spec', 'labels'], s.nodes.map((n) => [
    n.id, n.address, n.status, n.hub ? 'hub' : '', String(n.cpus), `${(n.memoryMb / 1024).toFixed(1)} GiB`, n.arch,
    n.status === 'alive' || n.status === 'suspect' ? formatDuration(at - n.startedAt) : '',
    shortVersion(s.spec.nodes.find((x) => x.id === n.id)?.spec),
    Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',')
  ]))))
  const p = s.hubs.policy
  lines.push('', `hubs: ${s.hubs.hubs.join(', ') || '(none)'} (policy: ${p.count} hubs, ranked by ${p.ranking.join(' > ')})`)
  const a = s.spec.applied
  lines.push('', a === undefined ? 'spec: none applied' : `spec: ${shortVersion(a.id)} "${a.message.split('\n')[0]}" by ${a.author}, ${a.date}; rollout ${s.spec.rollout}`)
  for (const w of s.spec.waiting) lines.push(`  waiting: ${w.instance} on ${w.node}: ${w.reason}`)
  const r = s.spec.lastRejected
  if (r !== undefined) {
    lines.push(`  last rejected: ${shortVersion(r.version)} at ${r.at}:`)
    for (const e of r.errors) lines.push(`    ${e}`)
  }
  lines.push('', `services (${s.services.services.length}):`)
  for (const svc of s.services.services) {
    lines.push(`  ${svc.name} (${svc.placement})`)
    if (svc.instances.length > 0) {
      lines.push(indent(indent(textTable(['instance', 'node', 'address', 'status', 'restarts', 'uptime', 'why'], svc.instances.map((i) => [
        i.instance, i.node, i.address ?? '', i.state, String(i.restarts ?? ''),
        i.startedAt !== undefined && i.state !== 'stopped' && i.state !== 'failed' ? formatDuration(at - i.startedAt) : '', i.reason ?? i.rollout ?? ''
      ])))))
    }
    for (const u of svc.unschedulable) lines.push(`    unschedulable${u.instance === undefined ? '' : ` ${u.instance}`}: ${u.reason}`)
  }
  lines.push('', `recent events (${s.events.length}):`, ...s.events.map((e) => '  ' + eventLine(e)))
  return lines.join('\n')
}

function atText (s: StateAt): string {
  const r = s.replayed
  const lines = [`origin cluster state at ${s.at}, replayed from the journals (by node ${s.answeredBy})`, '', `phase: ${r.phase ?? '(not known yet)'}`, '', `members (${Object.keys(r.members).length}):`]
  lines.push(indent(textTable(['id', 'address', 'status', 'since', 'cpus', 'memory', 'spec'], Object.entries(r.members).sort(([x], [y]) => (x < y ? -1 : 1)).map(([id, m]) => [
    id, m.address, m.status, new Date(m.since).toISOString(), String(m.cpus ?? ''), m.memoryMb === undefined ? '' : `${(m.memoryMb / 1024).toFixed(1)} GiB`, shortVersion(r.specByNode[id])
  ]))))
  lines.push('', `hubs: ${r.hubs.join(', ') || '(none)'}`)
  lines.push('', r.spec === undefined ? 'spec: none applied' : `spec: ${r.spec.summary}`)
  if (r.lastRejected !== undefined) lines.push(`  last rejected: ${r.lastRejected.summary} (${r.lastRejected.errors.join('; ')})`)
  lines.push('', `instances (${r.instances.length}):`)
  lines.push(indent(textTable(['instance', 'node', 'address', 'status', 'restarts', 'since', 'why'], r.instances.map((i) => [
    i.instance, i.node, i.address ?? '', i.state, String(i.restarts), new Date(i.since).toISOString(), i.reason ?? ''
  ]))))
  for (const u of s.unreachable) lines.push(`(${u.node}: journal not read: ${u.reason})`)
  lines.push('', `events before (${s.events.length}):`, ...s.events.map((e) => '  ' + eventLine(e)))
  return lines.join('\n')
}

/**
 * Which journal entries become live lines above the prompt: spec applied or rejected (once
 * per version, whichever node says it first) and rollout steps (once per instance and reason).
 */
export class LiveLines {
  private readonly seen = new Set<string>()
  lines (events: JournalEvent[]): string[] {
    const out: string[] = []
    for (const e of events) {
      let key: string | undefined
      if (e.kind === 'spec-applied' || e.kind === 'spec-rejected') key = `${e.kind}\0${e.version}`
      else if (e.kind === 'rollout') key = `rollout\0${e.instance}\0${e.reason}`
      else if (e.kind === 'instance' && (e.state === 'ready' || e.state === 'failed')) key = `instance\0${e.node}\0${e.instance}\0${e.version}\0${e.state}\0${e.restarts}`
      if (key === undefined || this.seen.has(key)) continue
      this.seen.add(key)
      out.push(`[${new Date(e.at).toLocaleTimeString()} ${e.node}] ${e.text}`)
    }
    if (this.seen.size > 10_000) this.seen.clear()
    return out
  }
}

/** `cluster.save(dir)`: what went where, as the line at the end says it. */
export class SaveReport {
  constructor (readonly dir: string, readonly files: string[], readonly problems: string[]) {}
  [inspect.custom] (): string { return this.toString() }
  toString (): string {
    const journals = this.files.filter((f) => f.startsWith('journal/') && f.endsWith('.jsonl')).length
    const nodeLogs = this.files.filter((f) => /^logs\/[^/]+\/node\.log$/.test(f)).length
    const services = this.files.filter((f) => /^logs\/[^/]+\/$/.test(f)).length
    return `saved to ${this.dir}: state.txt (read this first), state.json, journal/ (${journals} nodes, events.txt merged), ` +
      `logs/ (logs/<node>/node.log for ${nodeLogs} nodes, logs/<service>/<node>/<instance>.log for ${services} services)` +
      (this.problems.length === 0 ? '' : `\nnot saved: ${this.problems.join('; ')}`)
  }
}
