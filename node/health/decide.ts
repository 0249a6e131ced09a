/**
 * Pure: from one check's measurements to the causes found (`causes`), and from the causes
 * of successive checks to whether the node is unhealthy and why (`step`, with
 * hysteresis). No clock, no I/O: the I/O edge (measure.ts) hands the numbers in.
 */
import type { HealthSettings } from './config'

/** What one check measured. A field left out was not measured (nothing to say about it). */
export interface Measures {
  /** p99 of the event loop delay over the last window, ms. */
  eventLoopDelayMs?: number
  /** How the last finished data dir probe (write, fsync, remove a file) went. */
  probe?: { ok: true } | { ok: false, error: string }
  /** How long the probe under way has run, when one is. */
  probePendingMs?: number
  /** Bytes free in the data dir's file system for an unprivileged writer. */
  freeBytes?: number
  /** How long the current reconcile pass has run, builds not counted; 0 when none runs. */
  reconcilingMs?: number
}

export type CauseKind = 'event-loop' | 'data-dir' | 'disk-space' | 'supervisor'

export interface Cause { kind: CauseKind, text: string }

export type Bounds = Required<Pick<HealthSettings, 'eventLoopDelayMs' | 'minFreeMb' | 'reconcileStallMs' | 'probeTimeoutMs'>>

const MiB = 1024 * 1024

/** Why the node cannot do its job by these measurements, in words; empty when it can. */
export function causes (m: Measures, b: Bounds, dataDir: string): Cause[] {
  const out: Cause[] = []
  if (m.eventLoopDelayMs !== undefined && m.eventLoopDelayMs > b.eventLoopDelayMs) {
    out.push({ kind: 'event-loop', text: `event loop delayed ${seconds(m.eventLoopDelayMs)} (bound ${seconds(b.eventLoopDelayMs)})` })
  }
  const p = m.probe
  if (p !== undefined && p.ok === false) out.push({ kind: 'data-dir', text: `data dir ${dataDir} not writable: ${p.error}` })
  // A write that neither succeeds nor fails is the disk hanging (a dead network mount): as bad, and said so.
  else if (m.probePendingMs !== undefined && m.probePendingMs > b.probeTimeoutMs) out.push({ kind: 'data-dir', text: `data dir ${dataDir} not writable: a write has hung for ${seconds(m.probePendingMs)}` })
  if (m.freeBytes !== undefined && m.freeBytes < b.minFreeMb * MiB) {
    out.push({ kind: 'disk-space', text: `data dir has ${Math.floor(m.freeBytes / MiB)} MiB free (floor ${b.minFreeMb} MiB)` })
  }
  if (m.reconcilingMs !== undefined && m.reconcilingMs > b.reconcileStallMs) {
    out.push({ kind: 'supervisor', text: `supervisor has not reconciled for ${seconds(m.reconcilingMs)}` })
  }
  return out
}

/**
 * The monitor's memory between checks. `reason` is what the node says (undefined:
 * healthy); `kinds` the causes it names, so a reason is reworded only when a cause comes
 * or goes, not each time a number moves (every change is gossiped and journaled).
 */
export interface HealthState {
  reason?: string
  kinds: CauseKind[]
  /** Checks in a row with a cause, and with none. */
  failing: number
  passing: number
}

export const healthyState: HealthState = { kinds: [], failing: 0, passing: 0 }

export type Hysteresis = Required<Pick<HealthSettings, 'failChecks' | 'recoverChecks'>>

/**
 * The state after one more check that found `found`: unhealthy once causes were found
 * `failChecks` checks in a row, healthy again once none were for `recoverChecks` in a row.
 * While unhealthy, the reason follows the causes as they come and go.
 */
export function step (s: HealthState, found: Cause[], h: Hysteresis): HealthState {
  if (found.length === 0) {
    const passing = s.passing + 1
    if (s.reason !== undefined && passing < h.recoverChecks) return { ...s, failing: 0, passing }
    return { kinds: [], failing: 0, passing }
  }
  const failing = s.failing + 1
  const kinds = found.map((c) => c.kind)
  const reason = found.map((c) => c.text).join('; ')
  if (s.reason !== undefined) {
    const same = kinds.length === s.kinds.length && kinds.every((k, i) => k === s.kinds[i])
    return same ? { ...s, failing, passing: 0 } : { reason, kinds, failing, passing: 0 }
  }
  return failing >= h.failChecks ? { reason, kinds, failing, passing: 0 } : { kinds: [], failing, passing: 0 }
}

/** The `p`-th percentile (0-100) of `values` (nearest rank); undefined when there are none. */
export function percentile (values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]
}

/** `2.3 s`, `1 s`, `0.5 s`. */
export function seconds (ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`
}
