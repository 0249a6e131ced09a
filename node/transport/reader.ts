/**
 * The caller's side of a server-to-client stream: items pushed by the connection as frames
 * arrive, taken by a `for await` loop. Leaving the loop early cancels the stream.
 */
export interface StreamSink { push (v: unknown): void, end (): void, fail (e: Error): void }

export class StreamReader<R> implements StreamSink, AsyncIterator<R> {
  private readonly queue: Array<IteratorResult<R>> = []
  private failure?: Error
  private wake?: () => void
  private done = false

  /** `finish`: forget this stream (it ended, failed or was left); `cancel`: ask the server to stop. */
  constructor (private readonly finish: () => void, private readonly cancel: () => void) {}

  push (v: unknown): void { this.queue.push({ value: v as R, done: false }); this.notify() }
  end (): void { this.done = true; this.notify() }
  fail (e: Error): void { this.failure = e; this.notify() }

  async next (): Promise<IteratorResult<R>> {
    for (;;) {
      const item = this.queue.shift()
      if (item !== undefined) return item
      if (this.failure !== undefined) { this.finish(); throw this.failure }
      if (this.done) { this.finish(); return { value: undefined, done: true } }
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
  }

  async return (): Promise<IteratorResult<R>> {
    if (!this.done && this.failure === undefined) this.cancel()
    this.finish()
    return { value: undefined, done: true }
  }

  private notify (): void { const w = this.wake; this.wake = undefined; w?.() }
}
