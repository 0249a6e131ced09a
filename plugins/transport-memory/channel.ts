/**
 * Two ends of an in-memory frame channel. What one end sends arrives at the other on a
 * later turn of the event loop (never inside `send`), in order, as a copy: like a socket,
 * and so RPC meets the same re-entrancy as on the wire. A close reaches the other end after
 * the frames sent before it; a terminate drops what is in flight.
 */
import type { ChannelEvents, FrameChannel } from '../../node/transport/channel'
import type { Peer } from '../../node/transport/types'

type Item = { bytes: Buffer, binary: boolean } | { code: number, reason: string }

export class MemoryEnd implements FrameChannel {
  other!: MemoryEnd
  /** Largest message this end accepts; a bigger one closes with 1009, as ws's maxPayload does. */
  maxPayload = Infinity
  /** Bytes sent and not yet taken by the other end (RPC streams wait when it grows). */
  get bufferedAmount (): number { return this.other.inboxBytes }
  private inboxBytes = 0
  private events?: ChannelEvents
  private readonly inbox: Item[] = []
  private scheduled = false
  private state: 'open' | 'closing' | 'closed' = 'open'

  constructor (readonly peer: Peer) {}

  /** Two connected ends: `a` talks to whoever `aSees` names, `b` to `bSees`. */
  static pair (aSees: Peer, bSees: Peer): [MemoryEnd, MemoryEnd] {
    const a = new MemoryEnd(aSees)
    const b = new MemoryEnd(bSees)
    a.other = b
    b.other = a
    return [a, b]
  }

  get isOpen (): boolean { return this.state === 'open' }

  listen (events: ChannelEvents): void {
    this.events = events
    this.schedule()
  }

  send (bytes: Buffer, binary = true): void {
    if (this.state !== 'open') return
    this.other.arrive({ bytes: Buffer.from(bytes), binary })
  }

  batch (): void {}

  close (code: number, reason: string): void {
    if (this.state !== 'open') return
    this.state = 'closing'
    this.other.arrive({ code, reason })
  }

  terminate (): void {
    if (this.state === 'closed') return
    this.other.inbox.length = 0
    this.other.inboxBytes = 0
    this.other.arrive({ code: 1006, reason: '' })
    this.inbox.length = 0
    this.inboxBytes = 0
    this.arrive({ code: 1006, reason: '' })
    this.state = 'closing'
  }

  private arrive (item: Item): void {
    if (this.state === 'closed') return
    if ('bytes' in item) this.inboxBytes += item.bytes.length
    this.inbox.push(item)
    this.schedule()
  }

  private schedule (): void {
    if (this.scheduled || this.events === undefined || this.inbox.length === 0) return
    this.scheduled = true
    setImmediate(() => { this.scheduled = false; this.drain() })
  }

  private drain (): void {
    const events = this.events
    if (events === undefined) return
    for (let item = this.inbox.shift(); item !== undefined; item = this.inbox.shift()) {
      if (this.state === 'closed') return
      if ('bytes' in item) {
        this.inboxBytes -= item.bytes.length
        if (this.state !== 'open') continue
        if (item.bytes.length > this.maxPayload) {
          events.error(new RangeError('Max payload size exceeded'))
          this.close(1009, '')
          continue
        }
        events.frame(item.bytes, item.binary)
        continue
      }
      // A close: answer it (as the websocket closing handshake does), then report it.
      const answer = this.state === 'open'
      this.state = 'closed'
      this.inbox.length = 0
      this.inboxBytes = 0
      if (answer) this.other.arrive({ code: item.code, reason: item.reason })
      events.close(item.code, item.reason)
      return
    }
  }
}
