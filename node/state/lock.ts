/** One thing at a time per key (an instance): its prepare, stop and the serving of its directory never interleave. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>()

  /** Wait for the key, hold it until the returned function is called. */
  async acquire (key: string): Promise<() => void> {
    const before = this.tails.get(key) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>((resolve) => { release = resolve })
    const tail = before.then(async () => await mine)
    this.tails.set(key, tail)
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key) })
    await before
    let done = false
    return () => { if (!done) { done = true; release() } }
  }

  async run<T> (key: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(key)
    try { return await fn() } finally { release() }
  }
}
