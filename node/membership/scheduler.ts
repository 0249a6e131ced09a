/**
 * Time as the membership sees it: a clock and timers. The default is the real ones; the
 * simulation (sim/) passes a virtual clock so a thousand nodes run in one process,
 * deterministically, faster than real time.
 */

export interface Timer { cancel (): void }

export interface Scheduler {
  now (): number
  /** Run `fn` once after `ms`. */
  after (ms: number, fn: () => void): Timer
  /** Run `fn` every `ms`. */
  every (ms: number, fn: () => void): Timer
}

export function realScheduler (now: () => number = Date.now): Scheduler {
  return {
    now,
    after (ms, fn) {
      const t = setTimeout(fn, ms)
      return { cancel: () => clearTimeout(t) }
    },
    every (ms, fn) {
      const t = setInterval(fn, ms)
      return { cancel: () => clearInterval(t) }
    }
  }
}
