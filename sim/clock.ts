/**
 * Virtual time for the simulation: the membership's `Scheduler` over an event queue. Time
 * jumps from one event to the next; between events every promise continuation the last
 * one started runs (a macrotask turn), so async code behaves as it does on a real loop,
 * only without waiting. Events at the same time run in the order they were scheduled:
 * with a seeded network, a run is the same every time.
 */
import type { Scheduler, Timer } from '../node/membership'

interface Event { at: number, seq: number, fn: () => void, cancelled: boolean }

export class VirtualClock implements Scheduler {
  private t: number
  private seq = 0
  private readonly heap: Event[] = []
  /** Events run so far. */
  events = 0

  constructor (start: number) { this.t = start }

  now (): number { return this.t }

  after (ms: number, fn: () => void): Timer {
    const e: Event = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.push(e)
    return { cancel: () => { e.cancelled = true } }
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
    return { cancel: () => { stopped = true; current?.cancel() } }
  }

  /** Run events until virtual time `until` (or none are left); resolves at `until`. */
  async runUntil (until: number): Promise<void> {
    while (this.heap.length > 0 && this.heap[0].at <= until) {
      const e = this.pop()
      if (e.cancelled) continue
      this.t = e.at
      this.events++
      e.fn()
      // Let the promise chains this event started run before the next event.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    this.t = Math.max(this.t, until)
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

/** A seeded generator (mulberry32): the same seed, the same run. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
