/**
 * Time as every layer sees it: `now()` and timers, given to each layer as its `clock`
 * component. The real clock is Date.now and Node's timers; a virtual one (./virtual.ts)
 * lets tests and embedders run whole clusters in one process faster than real time, and
 * the membership simulation run a thousand nodes deterministically.
 *
 * What stays on real time on purpose: certificate validity (TLS checks it against the
 * host's clock), durations measured for stats and benchmarks, and the child processes and
 * containers an instance runs (their own clocks are the host's).
 */

export interface Timer {
  cancel (): void
  /** Let the process exit while only this timer is left (a no-op on a virtual clock). */
  unref (): Timer
  /** Hold the process open again (a no-op on a virtual clock). */
  ref (): Timer
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now (): number
  /** Run `fn` once after `ms`. */
  after (ms: number, fn: () => void): Timer
  /** Run `fn` every `ms`. */
  every (ms: number, fn: () => void): Timer
}

/** Date.now and Node's timers. `now` may be replaced alone (tests that move the wall clock). */
export function realClock (now: () => number = Date.now): Clock {
  return {
    now,
    after (ms, fn) { return handle(setTimeout(fn, ms), clearTimeout) },
    every (ms, fn) { return handle(setInterval(fn, ms), clearInterval) }
  }
}

/** The process-wide real clock: the default wherever no clock is given. */
export const systemClock: Clock = realClock()

function handle (t: NodeJS.Timeout, clear: (t: NodeJS.Timeout) => void): Timer {
  const timer: Timer = { cancel: () => clear(t), unref: () => { t.unref(); return timer }, ref: () => { t.ref(); return timer } }
  return timer
}

/**
 * Resolves after `ms` on `clock`, or rejects with the signal's reason when it aborts first.
 * An unref'd wait: it does not by itself hold a process open.
 */
export async function sleep (clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { timer.cancel(); reject(signal?.reason) }
    const timer = clock.after(ms, () => { signal?.removeEventListener('abort', onAbort); resolve() }).unref()
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** `p`, or undefined once `ms` passed on `clock` (the timer is cancelled either way). */
export async function within<T> (clock: Clock, ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: Timer | undefined
  try {
    return await Promise.race([p, new Promise<undefined>((resolve) => { timer = clock.after(ms, () => resolve(undefined)).unref() })])
  } finally {
    timer?.cancel()
  }
}

export { isoTime } from './iso'
