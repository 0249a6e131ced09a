/**
 * journal: every node keeps one, on disk, rotated like node.log, surviving restarts. One
 * entry per event — members joining, suspect, dead or left, unhealthy and why; hubs; spec applied or rejected
 * with the errors; the phase; instances starting, ready, unhealthy, restarting, stopped or
 * failed with the reason; rollout steps; operator actions — stored as a JSON line with a
 * readable `text`. It listens to the other layers' events and changes none of them.
 * `replay(entries, at)` rebuilds the cluster at a past moment from entries alone.
 *
 * @example
 *   const j = journal({ dataDir })({ membership, hubs, spec, supervisor, log })
 *   j.record({ kind: 'operator', operator: 'alice', action: 'forget', detail: 'node-3' })
 *   await j.read({ since: clock.now() - 600_000 })
 */
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { systemClock } from '../clock'
import { errorMessage } from '../errors'
import type { MemberStatus } from '../membership'
import type { Applied, Rejection } from '../desired/contract'
import type { InstanceStatus } from '../supervisor/types'
import { serviceOfInstance, type Phase } from '../scheduler'
import { RotatingLog, logParts } from '../logfile'
import { describeEvent } from './text'
import { matches, type Journal, type JournalBody, type JournalComponents, type JournalEvent, type JournalEvents, type JournalInit, type JournalQuery } from './types'

export * from './types'
export { replay, type Replayed, type ReplayedInstance } from './replay'
export { describeEvent } from './text'

export function journal (init: JournalInit) {
  return (c: JournalComponents): Journal => new FileJournal(init, c)
}

class FileJournal implements Journal {
  readonly events = new EventEmitter<JournalEvents>()
  readonly path: string
  private readonly file: RotatingLog
  private seq = 0
  private running = false
  private statuses = new Map<string, MemberStatus>()
  /** Member id -> why it says it is unhealthy, for members that say so. */
  private unhealthy = new Map<string, string>()
  private readonly lastInstance = new Map<string, string>()
  private readonly now: () => number

  constructor (init: JournalInit, private readonly c: JournalComponents) {
    this.path = join(init.dataDir, 'journal.jsonl')
    this.file = new RotatingLog({ path: this.path, maxBytes: init.maxBytes, keep: init.keep })
    const clock = c.clock ?? systemClock
    this.now = () => clock.now()
  }

  private readonly onMembers = (): void => {
    const next = new Map<string, MemberStatus>()
    for (const m of Object.values(this.c.membership.table())) {
      next.set(m.id, m.status)
      const from = this.statuses.get(m.id)
      if (from === m.status) continue
      const ch = m.characteristics
      this.record({ kind: 'member', member: m.id, status: m.status, ...(from === undefined ? {} : { from }), facts: { address: m.address, cpus: ch.cpus, memoryMb: ch.memoryMb, arch: ch.arch, labels: ch.labels } })
    }
    this.statuses = next
    this.onHealth()
  }

  /** Each member's word on its own health as it changes: every node journals it, so it is kept even when the unhealthy node cannot write. */
  private onHealth (): void {
    const next = new Map<string, string>()
    for (const m of Object.values(this.c.membership.table())) {
      if (m.status !== 'alive' && m.status !== 'suspect') continue
      const was = this.unhealthy.get(m.id)
      const is = m.characteristics.unhealthy
      if (is !== undefined) next.set(m.id, is)
      if (is === was) continue
      this.record(is === undefined ? { kind: 'health', member: m.id, ...(was === undefined ? {} : { was }) } : { kind: 'health', member: m.id, unhealthy: is })
    }
    // A member that died or left while unhealthy says nothing more: its status entry tells.
    this.unhealthy = next
  }

  private readonly onHubs = (h: { hubs: string[], promoted: string[], demoted: string[] }): void => {
    this.record({ kind: 'hubs', hubs: h.hubs, promoted: h.promoted, demoted: h.demoted })
  }

  private readonly onApplied = (a: Applied): void => {
    this.record({ kind: 'spec-applied', version: a.version, summary: summaryOf(a.version, a.info), services: Object.keys(a.spec.services).sort() })
  }

  private readonly onFetched = (f: { version: string, from: string }): void => {
    this.record({ kind: 'spec-fetched', version: f.version, from: f.from })
  }

  private readonly onBuild = (b: { service: string, what: 'started' | 'succeeded' | 'failed', detail: string }): void => {
    this.record({ kind: 'build', service: b.service, what: b.what, detail: b.detail })
  }

  private readonly onRejected = (r: Rejection): void => {
    this.record({ kind: 'spec-rejected', version: r.version, summary: summaryOf(r.version, r.info), errors: r.errors })
  }

  private readonly onDowned = (d: { ids: string[], strategy: string, reason: string }): void => {
    this.record({ kind: 'downing', what: 'downed', strategy: d.strategy, members: d.ids, reason: d.reason })
  }

  private readonly onHolding = (d: { strategy: string, reason: string }): void => {
    this.record({ kind: 'downing', what: 'holding', strategy: d.strategy, members: [], reason: d.reason })
  }

  private readonly onPhase = (p: Phase): void => { this.record({ kind: 'phase', phase: p.kind, reason: p.reason }) }

  private readonly onInstance = (e: { instance: string, service: string, version: string, address: string, status: InstanceStatus }): void => {
    // Status updates also carry samples (memory, pid): only a new state, reason or restart is an event.
    const s = e.status
    const key = `${s.state}\0${s.reason ?? ''}\0${s.restarts}`
    if (this.lastInstance.get(e.instance) === key) return
    if (s.state === 'stopped') this.lastInstance.delete(e.instance)
    else this.lastInstance.set(e.instance, key)
    this.record({ kind: 'instance', instance: e.instance, service: e.service, version: e.version, state: s.state, ...(s.reason === undefined ? {} : { reason: s.reason }), address: e.address, restarts: s.restarts })
  }

  private readonly onWaiting = (w: { instance: string, reason: string }): void => {
    this.record({ kind: 'rollout', instance: w.instance, service: serviceOfInstance(w.instance), reason: w.reason })
  }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    this.record({ kind: 'node', what: 'started' })
    this.c.membership.events.on('change', this.onMembers)
    this.c.membership.events.on('downed', this.onDowned)
    this.c.membership.events.on('holding', this.onHolding)
    this.c.hubs.events.on('change', this.onHubs)
    this.c.spec.events.on('applied', this.onApplied)
    this.c.spec.events.on('rejected', this.onRejected)
    this.c.spec.events.on('fetched', this.onFetched)
    this.c.supervisor.events.on('build', this.onBuild)
    this.c.supervisor.events.on('phase', this.onPhase)
    this.c.supervisor.events.on('instance', this.onInstance)
    this.c.supervisor.events.on('waiting', this.onWaiting)
    this.onMembers()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.c.membership.events.off('change', this.onMembers)
    this.c.membership.events.off('downed', this.onDowned)
    this.c.membership.events.off('holding', this.onHolding)
    this.c.hubs.events.off('change', this.onHubs)
    this.c.spec.events.off('applied', this.onApplied)
    this.c.spec.events.off('rejected', this.onRejected)
    this.c.spec.events.off('fetched', this.onFetched)
    this.c.supervisor.events.off('build', this.onBuild)
    this.c.supervisor.events.off('phase', this.onPhase)
    this.c.supervisor.events.off('instance', this.onInstance)
    this.c.supervisor.events.off('waiting', this.onWaiting)
    this.record({ kind: 'node', what: 'stopped' })
    this.running = false
    await this.file.close()
  }

  record (body: JournalBody): JournalEvent {
    const e = { ...body, at: this.now(), node: this.c.membership.id, seq: ++this.seq, text: describeEvent(body) } as JournalEvent
    try {
      this.file.write(JSON.stringify(e))
    } catch (err) {
      this.c.log.warn(`cannot write the journal ${this.path}: ${errorMessage(err)} (lost: ${e.text})`)
    }
    this.events.emit('entry', e)
    return e
  }

  /** Parts are read newest first, and reading stops at a part older than `since` (the live lines ask every 2 s). */
  async read (q: JournalQuery = {}): Promise<JournalEvent[]> {
    let out: JournalEvent[] = []
    const parts = await logParts(this.path)
    for (let i = parts.length - 1; i >= 0; i--) {
      let text: string
      try { text = await readFile(parts[i]!, 'utf8') } catch { continue } // rotated away meanwhile
      const kept: JournalEvent[] = []
      let older = false
      for (const line of text.split('\n')) {
        if (line === '') continue
        try {
          const e = JSON.parse(line) as JournalEvent
          if (q.since !== undefined && e.at < q.since) older = true
          if (matches(e, q)) kept.push(e)
        } catch { /* a line cut by a crash: skip it */ }
      }
      out = kept.concat(out)
      if (older || (q.limit !== undefined && out.length >= q.limit)) break
    }
    return q.limit === undefined ? out : out.slice(-q.limit)
  }
}

function summaryOf (version: string, info: unknown): string {
  const i = info as { message?: string, dir?: string } | undefined
  const short = version.startsWith('dir:') ? version : version.slice(0, 10)
  const message = typeof i?.message === 'string' ? i.message.split('\n')[0] : undefined
  return message === undefined || message === '' ? short : `${short} "${message}"`
}
