/**
 * The heartbeat failure detector the membership used before SWIM, kept as the model of a
 * node that the downing property test (test/unit/downing-property.test.ts) simulates
 * clusters with: the node itself now detects failures by probing (swim.ts), and its local
 * health and blind-time handling live in health.ts and suspicion.ts.
 *
 * Failure detection by heartbeats: remembers, per member, when its (incarnation,
 * heartbeat) last advanced in our table, and gives verdicts for members silent too long.
 * Time is an argument, so this is deterministic and testable.
 *
 * Local health (after Lifeguard): silence only counts while this node was able to
 * listen. Verdicts are asked for every gossip round; when the time since the last ask is
 * well over a round (the process was paused with SIGSTOP, the event loop stalled, the
 * clock jumped), the time this node was blind is not held against anyone: every member's
 * last sign of life moves forward by it, which gives each a fresh suspicion period to
 * show it is alive. A clock that went backwards restarts every member's period.
 */
import type { MemberTable } from './types'

interface Progress { incarnation: number, heartbeat: number, at: number }

export interface DetectorOptions {
  suspectAfterMs: number
  deadAfterMs: number
  /** How often `verdicts` is asked (the gossip interval): gaps past twice this are blind time. */
  intervalMs: number
}

export interface Verdicts {
  marks: Array<[string, 'suspect' | 'dead']>
  /** Time this node could not watch since the last ask (0 normally), not counted as anyone's silence. */
  blindMs: number
}

export class FailureDetector {
  private readonly progress = new Map<string, Progress>()
  private lastAsked?: number

  constructor (private readonly o: DetectorOptions) {}

  /**
   * This node starts watching at `now` (before its first round): a pause before that
   * round is blind time too.
   */
  watching (now: number): void {
    this.lastAsked = now
  }

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

  /**
   * Members to mark: dead after `deadAfterMs` of silence, suspect after `suspectAfterMs`,
   * silence counted only over time this node was watching (see the top of this file).
   */
  verdicts (table: MemberTable, selfId: string, now: number): Verdicts {
    const blindMs = this.discountBlindTime(now)
    const marks: Array<[string, 'suspect' | 'dead']> = []
    for (const m of Object.values(table)) {
      if (m.id === selfId || (m.status !== 'alive' && m.status !== 'suspect')) continue
      const silent = now - (this.progress.get(m.id)?.at ?? now)
      if (silent >= this.o.deadAfterMs) marks.push([m.id, 'dead'])
      else if (silent >= this.o.suspectAfterMs && m.status === 'alive') marks.push([m.id, 'suspect'])
    }
    return { marks, blindMs }
  }

  /** Members whose heartbeat advanced here within the last `withinMs`. */
  heardWithin (now: number, withinMs: number): Set<string> {
    return new Set([...this.progress].filter(([, p]) => now - p.at < withinMs).map(([id]) => id))
  }

  describeSilence (id: string, now: number): string {
    const p = this.progress.get(id)
    return p === undefined ? '' : `no heartbeat for ${((now - p.at) / 1000).toFixed(1)} s`
  }

  private discountBlindTime (now: number): number {
    const last = this.lastAsked
    this.lastAsked = now
    if (last === undefined) return 0
    const gap = now - last
    if (gap >= 0 && gap <= 2 * this.o.intervalMs) return 0
    // A gap past two rounds: all of it but one round is time we could not listen.
    const blindMs = gap < 0 ? Infinity : gap - this.o.intervalMs
    for (const p of this.progress.values()) p.at = Math.min(now, p.at + blindMs)
    return blindMs
  }
}
