/**
 * Ports for instances. Each instance gets one port per name its service declares, free on
 * the host it listens on; an instance keeps its ports across restarts and node restarts
 * where they are still free (the book is kept in the data dir), so clients that cached an
 * address are not sent elsewhere for nothing.
 */
import net from 'node:net'
import { readFile } from 'node:fs/promises'
import { writeJsonAtomic } from '../files'

/**
 * A TCP port nobody holds at `host` nor on any other address (the OS picks it). Many
 * programs listen on every address whatever $HOST says (`listen(PORT)`), and that fails
 * while any address has the port: a port free only at `host` could be another program's
 * on 127.0.0.1, and the instance would crash-loop on EADDRINUSE.
 */
export async function freePort (host = '127.0.0.1'): Promise<number> {
  for (let tries = 1; ; tries++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer()
      s.once('error', reject)
      s.listen(0, host, () => {
        const port = (s.address() as net.AddressInfo).port
        s.close(() => resolve(port))
      })
    })
    // After many tries the last one is taken as it is: listening on `host` still works there.
    if (tries >= 20 || await canListen(undefined, port)) return port
  }
}

/** Whether `port` can be listened on at `host` now, and on every address (see freePort). */
export async function portIsFree (host: string, port: number): Promise<boolean> {
  return await canListen(host, port) && await canListen(undefined, port)
}

/** Whether a listener at `host` (every address when undefined, as node's `listen(port)`) can have `port`. */
async function canListen (host: string | undefined, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(port, host, () => s.close(() => resolve(true)))
  })
}

type Book = Record<string, Record<string, number>>

export class PortBook {
  private book: Book | undefined
  private writing: Promise<void> = Promise.resolve()

  constructor (private readonly file: string) {}

  /**
   * Ports for `instance`, by name in `names` order. `pinned` ports are used as given;
   * others reuse the instance's last port when it is free on `host`, else a new free one.
   */
  async portsFor (instance: string, names: string[], pinned: Record<string, number | undefined>, host: string): Promise<Array<[string, number]>> {
    const book = await this.load()
    const last = book[instance] ?? {}
    const out: Array<[string, number]> = []
    for (const name of names) {
      const fixed = pinned[name]
      if (fixed !== undefined) { out.push([name, fixed]); continue }
      const before = last[name]
      const taken = new Set(out.map(([, p]) => p))
      out.push([name, before !== undefined && !taken.has(before) && await portIsFree(host, before) ? before : await freePort(host)])
    }
    book[instance] = Object.fromEntries(out)
    await this.save()
    return out
  }

  private async load (): Promise<Book> {
    if (this.book === undefined) {
      const text = await readFile(this.file, 'utf8').catch(() => '{}')
      try {
        const parsed = JSON.parse(text) as unknown
        this.book = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed as Book : {}
      } catch {
        this.book = {} // a damaged book costs only new ports
      }
    }
    return this.book
  }

  private async save (): Promise<void> {
    const book = { ...this.book }
    this.writing = this.writing.then(async () => { await writeJsonAtomic(this.file, book) }).catch(() => {})
    await this.writing
  }
}
