/**
 * Failure detection by heartbeats: remembers, per member, when its (incarnation,
 * heartbeat) last advanced in our table, and gives verdicts for members silent too long.
 * Time is an argument, so this is deterministic and testable.
 */
import type { MemberTable } from './types'

interface Progress { incarnation: number, heartbeat: number, at: number }

export class FailureDetector {
  private readonly progress = new Map<string, Progress>()

  constructor (private readonly o: { suspectAfterMs: number, deadAfterMs: number }) {}

  /** Note members whose heartbeat advanced (or who are new) at time `now`. */
  observe (table: MemberTable, selfId: string, now: number): void {
    for (const m of Object.values(table)) {
      if (m.id === selfId) continue
      const p = this.progress.get(m.id)
      if (p === undefined || m.incarnation > p.incarnation || (m.incarnation === p.incarnation && m.heartbeat > p.heartbeat)) {
        this.progress.set(m.id, { incarnation: m.incarnation, heartbeat: m.heartbeat, at: now })
      }
    }
  }

  /** Members to mark: dead after `deadAfterMs` of silence, suspect after `suspectAfterMs`. */
  verdicts (table: MemberTable, selfId: string, now: number): Array<[string, 'suspect' | 'dead']> {
    const out: Array<[string, 'suspect' | 'dead']> = []
    for (const m of Object.values(table)) {
      if (m.id === selfId || (m.status !== 'alive' && m.status !== 'suspect')) continue
      const silent = now - (this.progress.get(m.id)?.at ?? now)
      if (silent >= this.o.deadAfterMs) out.push([m.id, 'dead'])
      else if (silent >= this.o.suspectAfterMs && m.status === 'alive') out.push([m.id, 'suspect'])
    }
    return out
  }

  describeSilence (id: string, now: number): string {
    const p = this.progress.get(id)
    return p === undefined ? '' : `no heartbeat for ${((now - p.at) / 1000).toFixed(1)} s`
  }
}
