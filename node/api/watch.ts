/**
 * Watches of `/v1/services/<svc>?watch=1` as server-sent events: one `instances` event with
 * the ready instances at once, then one each time that list (who is ready, and where)
 * changes, so an app follows a failover without polling. One membership listener serves
 * every watch; a comment line every `keepAliveMs` keeps idle proxies from closing the stream.
 */
import type { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'

interface Watch { res: ServerResponse, last: string, view: () => unknown }

export class Watches {
  private readonly watches = new Set<Watch>()
  private readonly onChange = (): void => { for (const w of this.watches) this.send(w) }
  private timer?: NodeJS.Timeout

  constructor (private readonly events: EventEmitter, private readonly keepAliveMs = 15_000) {}

  /** Streams `view()` to `res` now and whenever it changes, until the client goes away. */
  add (res: ServerResponse, view: () => unknown): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
    const w: Watch = { res, last: '', view }
    if (this.watches.size === 0) {
      this.events.on('change', this.onChange)
      // Real time: idle proxies close real connections after real seconds.
      this.timer = setInterval(() => { for (const x of this.watches) x.res.write(': keep-alive\n\n') }, this.keepAliveMs)
      this.timer.unref()
    }
    this.watches.add(w)
    res.on('close', () => this.remove(w))
    this.send(w)
  }

  private send (w: Watch): void {
    const data = JSON.stringify(w.view())
    if (data === w.last) return
    w.last = data
    w.res.write(`event: instances\ndata: ${data}\n\n`)
  }

  private remove (w: Watch): void {
    if (!this.watches.delete(w) || this.watches.size > 0) return
    this.events.off('change', this.onChange)
    clearInterval(this.timer)
  }

  /** Ends every stream (the node is stopping). */
  close (): void {
    for (const w of [...this.watches]) { w.res.end(); this.remove(w) }
  }
}
