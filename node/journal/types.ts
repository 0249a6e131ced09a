/**
 * What a journal holds: one entry per event, structured (a `kind` and its fields) and with
 * a readable `text`. Entries are JSON lines on disk; the union below is the contract that
 * `replay` and the REPL read.
 */
import type { EventEmitter } from 'node:events'
import type { Clock } from '../clock'
import type { SpecLayer } from '../desired/contract'
import type { Hubs } from '../hubs/types'
import type { Logger } from '../log'
import type { Membership, MemberStatus } from '../membership'
import type { Supervisor } from '../supervisor/types'

export interface MemberFacts {
  address: string
  cpus?: number
  memoryMb?: number
  arch?: string
  labels?: Record<string, string>
}

export type JournalBody =
  /** This node's journal opened (the node started) or closed (it stopped gracefully). */
  | { kind: 'node', what: 'started' | 'stopped' }
  /** A member of this node's table changed status (`from` absent: it joined this node's table). */
  | { kind: 'member', member: string, status: MemberStatus, from?: MemberStatus, facts: MemberFacts }
  /** A member said it cannot do its job, and why (`unhealthy`), or that it can again (`was`: why it could not). */
  | { kind: 'health', member: string, unhealthy?: string, was?: string }
  | { kind: 'hubs', hubs: string[], promoted: string[], demoted: string[] }
  | { kind: 'spec-fetched', version: string, from: string }
  | { kind: 'spec-applied', version: string, summary: string, services: string[] }
  | { kind: 'spec-rejected', version: string, summary: string, errors: string[] }
  | { kind: 'phase', phase: string, reason: string }
  /** One of this node's instances changed state (started, ready, unhealthy, restarted, stopped, failed, killed for memory). */
  | { kind: 'instance', instance: string, service: string, version: string, state: string, reason?: string, address?: string, restarts: number }
  /** An assigned instance waits (rollout steps, builds, handovers), with why. */
  | { kind: 'rollout', instance: string, service: string, reason: string }
  | { kind: 'build', service: string, what: 'started' | 'succeeded' | 'failed', detail: string }
  /**
   * Downing (node/membership/downing.ts): this node downed `members` (made them `left`), or
   * its strategy kept it from downing the dead (`holding`); `reason` says which strategy
   * decided and why ("lease: this node holds /origin/demo/downing, token 42").
   */
  | { kind: 'downing', what: 'downed' | 'holding', strategy: string, members: string[], reason: string }
  /** An operator asked for something (`forget node-3`, `sync`). */
  | { kind: 'operator', operator: string, action: string, detail?: string }

export type JournalKind = JournalBody['kind']

/** An entry as stored and as sent: when (ms since the epoch), which node wrote it, its order there. */
export type JournalEvent = JournalBody & { at: number, node: string, seq: number, text: string }

/** Which entries `read` returns. */
export interface JournalQuery {
  /** Only entries at or after this time (ms since the epoch). */
  since?: number
  /** Only entries up to this time. */
  until?: number
  /** Only entries about this service (its instances, rollouts). */
  service?: string
  /** Only these kinds. */
  kinds?: JournalKind[]
  /** Only the last N entries. */
  limit?: number
}

/** Time order across nodes; within one node, the order it wrote them. */
export function compareEvents (a: JournalEvent, b: JournalEvent): number {
  return a.at - b.at || (a.node < b.node ? -1 : a.node > b.node ? 1 : a.seq - b.seq)
}

export function matches (e: JournalEvent, q: JournalQuery): boolean {
  if (q.since !== undefined && e.at < q.since) return false
  if (q.until !== undefined && e.at > q.until) return false
  if (q.kinds !== undefined && !q.kinds.includes(e.kind)) return false
  if (q.service !== undefined) {
    if (e.kind === 'instance' || e.kind === 'rollout') return e.service === q.service
    if (e.kind === 'spec-applied') return e.services.includes(q.service)
    return false
  }
  return true
}

export interface JournalInit {
  dataDir: string
  /** Size of one part of `DATA/journal.jsonl` before it rotates: more per part vs larger reads. @default 10 MiB */
  maxBytes?: number
  /** Rotated parts kept: more history vs more disk. @default 5 */
  keep?: number
}

/** Only what it listens to: the journal hears the layers' events and changes none of them. */
export interface JournalComponents {
  membership: Pick<Membership, 'id' | 'table' | 'events'>
  hubs: Pick<Hubs, 'events'>
  spec: Pick<SpecLayer, 'events'>
  supervisor: Pick<Supervisor, 'events'>
  log: Logger
  /** What each entry's `at` is read from: the cluster's time, replayed and merged across nodes. @default systemClock */
  clock?: Clock
}

export interface JournalEvents {
  /** Each entry as recorded. */
  entry: [JournalEvent]
}

export interface Journal {
  start (): Promise<void>
  stop (): Promise<void>
  /** The file (its rotated parts are `.1`, `.2`, ...). */
  readonly path: string
  /** Adds an entry (operators' actions come this way); returns it as stored. */
  record (body: JournalBody): JournalEvent
  /** Entries on disk, oldest first, rotated parts included. */
  read (q?: JournalQuery): Promise<JournalEvent[]>
  readonly events: EventEmitter<JournalEvents>
}
