/** Wait on conditions, never on fixed sleeps. */

export interface WaitOptions {
  /** @default 15000 */
  timeoutMs?: number
  /** @default 50 */
  intervalMs?: number
  /** What is awaited, for the error message. */
  what?: string
}

/** Polls `condition` until it returns a truthy value (returned) or the time is up (throws, with the last error). */
export async function waitFor<T> (condition: () => T | Promise<T>, o: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = o.timeoutMs ?? 15_000
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await condition()
      if (v) return v as NonNullable<T>
      last = undefined
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: last error: ${last.message}` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${o.what ?? 'a condition'}${why}`)
    }
    await new Promise((resolve) => setTimeout(resolve, o.intervalMs ?? 50))
  }
}
