/**
 * The I/O edge of the self-health monitor: each class measures one thing and hands plain
 * numbers to the pure decision (decide.ts).
 */
import { open, statfs, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { percentile, type Measures } from './decide'
import type { LoopDelayFigures } from './types'

/**
 * Event loop delay: a timer due every `resolutionMs` records how late it fires, and the
 * p99 is taken over the samples of the last `windowMs`. Node's monitorEventLoopDelay does
 * the same sampling in C++, but its histogram can only be read whole and reset, not slid:
 * reset at each check, a loop that stalls again and again looks healthy at every check
 * that lands between two stalls.
 *
 * On real time whatever the node's clock: it measures how late the host runs this
 * process's timers, which a virtual clock (on time by construction) cannot show.
 */
export class LoopDelay {
  private timer?: NodeJS.Timeout
  private last = 0
  /**
   * The samples, a ring oldest first from `head`: when each was taken and how late the
   * timer was, ms. Preallocated: a sample object every 20 ms, kept for the window, lived
   * long enough to be promoted, and was most of the garbage an idle node's old generation
   * gathered between V8's full collections (~3 KiB a second).
   */
  private readonly at: Float64Array
  private readonly late: Float64Array
  private head = 0
  private count = 0

  constructor (private readonly windowMs: number, private readonly resolutionMs = 20, private readonly now: () => number = () => performance.now()) {
    // A timer fires at most once per resolutionMs, so this many cover the window.
    const size = Math.ceil(windowMs / resolutionMs) + 2
    this.at = new Float64Array(size)
    this.late = new Float64Array(size)
  }

  start (): void {
    if (this.timer !== undefined) return
    this.last = this.now()
    this.timer = setInterval(() => {
      const at = this.now()
      this.record(at, Math.max(0, at - this.last - this.resolutionMs))
      this.last = at
    }, this.resolutionMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.head = 0
    this.count = 0
  }

  /** A sample taken at `at`, `ms` late (the timer does this; tests call it directly). */
  record (at: number, ms: number): void {
    const size = this.at.length
    if (this.count === size) { this.head = (this.head + 1) % size; this.count-- } // full: the oldest goes
    const i = (this.head + this.count) % size
    this.at[i] = at
    this.late[i] = ms
    this.count++
  }

  /**
   * p99 of the delay over the window, in ms (undefined before the first sample). A stall
   * is one sample, however long: it counts as 1% once it is one of 100 in the window.
   */
  p99 (): number | undefined {
    return percentile(this.window(), 99)
  }

  /** p50, p99 and max of the delay over the window, ms (undefined before the first sample): what stats show. */
  figures (): LoopDelayFigures | undefined {
    const delays = this.window()
    if (delays.length === 0) return undefined
    const round = (ms: number | undefined): number => Math.round((ms ?? 0) * 100) / 100
    return { p50: round(percentile(delays, 50)), p99: round(percentile(delays, 99)), max: round(Math.max(...delays)) }
  }

  /** The delays sampled in the window, oldest first (older samples dropped). */
  private window (): number[] {
    const since = this.now() - this.windowMs
    const size = this.at.length
    while (this.count > 0 && this.at[this.head] < since) { this.head = (this.head + 1) % size; this.count-- }
    const out: number[] = new Array(this.count)
    for (let k = 0; k < this.count; k++) out[k] = this.late[(this.head + k) % size]
    return out
  }
}

type ProbeResult = { ok: true, freeBytes: number } | { ok: false, error: string, freeBytes?: number }

/**
 * Whether the data dir takes a write (write, fsync, remove a small file) and how much room
 * it has (statfs). A probe runs in the background and its outcome is read at the next
 * check, so a disk that hangs never blocks the monitor: it shows as a probe still pending.
 */
export class DataDirProbe {
  private running?: { since: number, done: Promise<void> }
  private last?: ProbeResult
  private readonly file: string

  constructor (private readonly dir: string, private readonly now: () => number) {
    this.file = join(dir, 'health-probe.tmp')
  }

  /** What the last finished probe found (or that one hangs), and a new probe started unless one still runs. */
  check (): Pick<Measures, 'probe' | 'probePendingMs' | 'freeBytes'> {
    const now = this.now()
    const last = this.last
    const found = last === undefined ? {} : { probe: last.ok ? { ok: true as const } : { ok: false as const, error: last.error }, freeBytes: last.freeBytes }
    if (this.running !== undefined) return { ...found, probePendingMs: now - this.running.since }
    const done = this.probe().then((r) => { this.last = r }).finally(() => { this.running = undefined })
    this.running = { since: now, done }
    return found
  }

  /** Resolves once no probe runs (one that hangs keeps it waiting). */
  async settled (): Promise<void> {
    await this.running?.done
  }

  private async probe (): Promise<ProbeResult> {
    let error: string | undefined
    try {
      const f = await open(this.file, 'w')
      try {
        await f.write('origin: can this node write its data dir?\n')
        await f.sync()
      } finally {
        await f.close()
      }
      await unlink(this.file)
    } catch (err) {
      error = codeOf(err)
      await unlink(this.file).catch(() => {})
    }
    let freeBytes: number | undefined
    try {
      const s = await statfs(this.dir)
      freeBytes = s.bavail * s.bsize
    } catch (err) {
      error ??= `cannot read its free space: ${codeOf(err)}`
    }
    return error === undefined && freeBytes !== undefined ? { ok: true, freeBytes } : { ok: false, error: error ?? 'unknown', freeBytes }
  }
}

/** `EROFS`, `ENOSPC`, `EACCES` (the code a person searches for), else the message. */
function codeOf (err: unknown): string {
  const e = err as { code?: unknown, message?: unknown }
  return typeof e.code === 'string' ? e.code : typeof e.message === 'string' ? e.message : String(err)
}

/**
 * How long the supervisor's current reconcile pass has run, from its 'reconcile' and
 * 'build' events. Builds are not counted: a long build is the service's, with its own
 * journal entries and log, not a supervisor that stopped working.
 */
export class ReconcileWatch {
  private passSince?: number
  private builds = 0
  private buildEndedAt = -Infinity

  reconcile (what: 'started' | 'ended', now: number): void {
    this.passSince = what === 'started' ? now : undefined
  }

  build (what: 'started' | 'succeeded' | 'failed', now: number): void {
    if (what === 'started') { this.builds++; return }
    this.builds = Math.max(0, this.builds - 1)
    this.buildEndedAt = now
  }

  /** 0 when no pass runs or a build is under way. */
  reconcilingMs (now: number): number {
    if (this.passSince === undefined || this.builds > 0) return 0
    return Math.max(0, now - Math.max(this.passSince, this.buildEndedAt))
  }
}
