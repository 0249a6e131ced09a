/**
 * Virtual time over an event queue. Time jumps from one timer to the next; between timers
 * every promise continuation the last one started runs (a macrotask turn), so async code
 * behaves as it does on a real loop, only without waiting. Timers due at the same moment
 * run in the order they were set: with a seeded network (sim/), a run is the same every
 * time.
 *
 * Two ways to move it: `runUntil(t)` steps to `t` (the simulation, where nothing but timers
 * and in-memory messages happen); `drive()` keeps stepping a little virtual time per real
 * tick, so nodes that also do real I/O (files, git, child processes) see it finish while
 * their virtual seconds pass at many times the real rate.
 */
import type { Clock, Timer } from '.'

interface Event { at: number, seq: number, fn: () => void, cancelled: boolean }

export interface DriveOptions {
  /** Virtual time moved per step. @default 20 */
  stepMs?: number
  /** Real time between steps (I/O finishes meanwhile). @default 1 */
  realMs?: number
}

export class VirtualClock implements Clock {
  private t: number
  private seq = 0
  private readonly heap: Event[] = []
  /** Timers run so far. */
  events = 0

  constructor (start: number = Date.now()) { this.t = start }

  now (): number { return this.t }

  after (ms: number, fn: () => void): Timer {
    const e: Event = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.push(e)
    const timer: Timer = { cancel: () => { e.cancelled = true }, unref: () => timer, ref: () => timer }
    return timer
  }

  every (ms: number, fn: () => void): Timer {
    let current: Timer | undefined
    let stopped = false
    const step = (): void => {
      if (stopped) return
      current = this.after(ms, step)
      fn()
    }
    current = this.after(ms, step)
    const timer: Timer = { cancel: () => { stopped = true; current?.cancel() }, unref: () => timer, ref: () => timer }
    return timer
  }

  /** Run timers until virtual time `until` (or none are left); resolves at `until`. */
  async runUntil (until: number): Promise<void> {
    while (this.heap.length > 0 && this.heap[0].at <= until) {
      const e = this.pop()
      if (e.cancelled) continue
      this.t = e.at
      this.events++
      try {
        e.fn()
      } catch (err) {
        // A real timer's throw would crash the process; here it must not stop time for every other node.
        queueMicrotask(() => { throw err })
      }
      // Let the promise chains this timer started run before the next one.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    this.t = Math.max(this.t, until)
  }

  /**
   * Move time forward by itself, `stepMs` of virtual time per `realMs` of real time, until
   * the returned function is called (it resolves once the step under way has ended).
   */
  drive (o: DriveOptions = {}): () => Promise<void> {
    const stepMs = o.stepMs ?? 20
    const realMs = o.realMs ?? 1
    let running = true
    const loop = (async () => {
      while (running) {
        await this.runUntil(this.t + stepMs)
        await new Promise<void>((resolve) => setTimeout(resolve, realMs))
      }
    })()
    return async () => { running = false; await loop }
  }

  private push (e: Event): void {
    const h = this.heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }

  private pop (): Event {
    const h = this.heap
    const top = h[0]
    const last = h.pop() as Event
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l], h[m])) m = l
        if (r < h.length && before(h[r], h[m])) m = r
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    return top
  }
}

function before (a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}
