/**
 * Inbound connections that have not authenticated yet: from the TCP accept until the
 * websocket upgrade with a valid certificate. Until then a connection costs a file
 * descriptor and TLS state and proves nothing, so it gets little:
 *
 * - a time limit (`handshakeTimeoutMs`), after which it is closed;
 * - a share per address (`maxUnauthenticatedPerAddress`, an IPv4 address or an IPv6 /64):
 *   a newcomer beyond it is closed at once;
 * - a place among all of them (`maxUnauthenticated`): when full, the oldest is closed to
 *   make room, so a peer that authenticates in milliseconds still gets in while others
 *   hold connections open and send nothing.
 *
 * A plain HTTPS request (a webhook) restarts the clock: each request has the same time to be
 * read and answered, and a connection idle after its answer is closed quietly.
 */
import type { Socket } from 'node:net'
import { systemClock, type Clock, type Timer } from '../clock'

export interface AdmissionLimits {
  handshakeTimeoutMs: number
  maxUnauthenticated: number
  maxUnauthenticatedPerAddress: number
}

/** Told about each connection closed for a limit: `kind` for the summary, `why` in words. */
export type OnRefused = (socket: Socket, kind: string, why: string) => void

interface Waiting { key: string, timer: Timer, http: boolean }

export class Admission {
  /** In arrival order, so the first key is the oldest. */
  private readonly waiting = new Map<Socket, Waiting>()
  private readonly perAddress = new Map<string, number>()
  /** Sockets closed here: the TLS errors that follow are not refusals of their own. */
  private readonly closedHere = new WeakSet<Socket>()

  constructor (private readonly limits: AdmissionLimits, private readonly onRefused: OnRefused, private readonly clock: Clock = systemClock) {}

  /** Connections waiting to authenticate now. */
  get size (): number { return this.waiting.size }

  /** Whether this socket was closed here (for a limit or at stop). */
  closedByUs (socket: Socket): boolean { return this.closedHere.has(socket) }

  /** A TCP connection was accepted: count it, or close it if its address has its share. */
  admit (socket: Socket): void {
    const key = addressKey(socket.remoteAddress ?? '?')
    const mine = this.perAddress.get(key) ?? 0
    if (mine >= this.limits.maxUnauthenticatedPerAddress) {
      this.close(socket, 'too many unauthenticated from one address', `${mine} connections from ${key} are already waiting to authenticate (the limit per address)`)
      return
    }
    if (this.waiting.size >= this.limits.maxUnauthenticated) {
      const oldest = this.waiting.keys().next().value as Socket
      this.close(oldest, 'dropped for newer connections', `not authenticated yet when ${this.limits.maxUnauthenticated} connections were waiting; dropped the oldest for a newer one`)
    }
    this.waiting.set(socket, { key, timer: this.deadline(socket), http: false })
    this.perAddress.set(key, mine + 1)
    socket.once('close', () => this.release(socket))
  }

  /** The connection authenticated: it no longer counts, and no clock closes it. */
  authenticated (socket: Socket): void { this.release(socket) }

  /** A plain HTTPS request arrived on it: the clock starts again for this request. */
  request (socket: Socket): void {
    const w = this.waiting.get(socket)
    if (w === undefined) return
    w.timer.cancel()
    w.http = true
    w.timer = this.deadline(socket)
  }

  /** Close every waiting connection (the server is stopping). */
  stop (): void {
    for (const socket of [...this.waiting.keys()]) this.close(socket)
  }

  /** The time `socket` has to authenticate (or to finish its HTTPS request). */
  private deadline (socket: Socket): Timer {
    return this.clock.after(this.limits.handshakeTimeoutMs, () => {
      if (this.waiting.get(socket)?.http === true) this.close(socket) // a finished (or too slow) HTTPS exchange: not a refusal
      else this.close(socket, 'handshake timeout', `did not authenticate within ${this.limits.handshakeTimeoutMs} ms`)
    }).unref()
  }

  private close (socket: Socket, kind?: string, why?: string): void {
    this.closedHere.add(socket)
    this.release(socket)
    if (kind !== undefined && why !== undefined) this.onRefused(socket, kind, why)
    socket.destroy()
  }

  private release (socket: Socket): void {
    const w = this.waiting.get(socket)
    if (w === undefined) return
    this.waiting.delete(socket)
    w.timer.cancel()
    const n = (this.perAddress.get(w.key) ?? 1) - 1
    if (n <= 0) this.perAddress.delete(w.key)
    else this.perAddress.set(w.key, n)
  }
}

/**
 * What one party controls: an IPv4 address (also as ::ffff:a.b.c.d), or the /64 of an IPv6
 * address (a host usually has a whole /64, so counting single IPv6 addresses would not limit it).
 */
export function addressKey (ip: string): string {
  const bare = ip.replace(/%.*$/, '')
  if (!bare.includes(':')) return bare
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(bare)) return bare.slice(7)
  const halves = bare.split('::')
  const head = halves[0] === '' ? [] : halves[0].split(':')
  const tail = halves.length < 2 || halves[1] === '' ? [] : halves[1].split(':')
  const groups = halves.length < 2 ? head : [...head, ...Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail]
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':')}::/64`
}
