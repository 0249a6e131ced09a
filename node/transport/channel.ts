/**
 * The frame channel: what RPC (rpc.ts) needs from a connection, and all it needs. One
 * message is one encoded frame; the channel moves bytes and says who is on the other end.
 * The websocket transport adapts a `ws` socket to it (wsChannel below); the in-memory
 * transport (plugins/transport-memory) implements it with a pair of queues. Frames are
 * encoded, scanned and validated above the channel, so every channel behaves the same.
 */
import type WebSocket from 'ws'
import type { Socket } from 'node:net'
import type { Peer } from './types'

export interface ChannelEvents {
  /** One message; `binary` false for a text message (which RPC refuses). */
  frame (bytes: Buffer, binary: boolean): void
  /** The channel closed (once), with a websocket-style code and reason. */
  close (code: number, reason: string): void
  /** A transport-level error (logged; a close follows if the channel is unusable). */
  error (err: Error): void
}

export interface FrameChannel {
  /** Who is on the other end, verified by the transport before the channel exists. */
  readonly peer: Peer
  readonly isOpen: boolean
  /** Bytes accepted by `send` and not yet written out (for backpressure). */
  readonly bufferedAmount: number
  /** Subscribe once, before any frame can arrive (RPC does it in its constructor). */
  listen (events: ChannelEvents): void
  send (bytes: Buffer): void
  /** Hint, before `send`: frames sent in this loop turn may leave in one write. */
  batch (): void
  /** Close in order (the other end sees `code` and `reason`). */
  close (code: number, reason: string): void
  /** Close at once (a revoked or broken peer). */
  terminate (): void
}

/**
 * A `ws` socket as a frame channel. `socket` is the TLS socket under it (the transport has
 * it from the upgrade): corking it lets frames sent close together leave as one TLS record
 * and one write instead of one each. Without it frames are written one by one.
 *
 * The first frame of a loop turn is written at once; only when a second follows in the same
 * turn is the socket corked, and the rest leave together when the event loop has handled
 * every read that was ready (setImmediate), not at the end of the current callback: answers
 * to requests that arrived in several reads of one turn then share a write, on both ends.
 * One call at a time thus costs no cork (corking a TLS socket and writing on uncork cost a
 * lone answer ~7 µs of CPU and 10-15 µs of round trip, measured against a raw websocket
 * echo), and pipelined calls still share writes. A batch that reaches `FLUSH_BYTES` is
 * written at once.
 */
export function wsChannel (ws: WebSocket, peer: Peer, socket?: Socket): FrameChannel {
  // 'idle': nothing sent this turn; 'sent': one frame went out at once; 'corked': more followed.
  let turn: 'idle' | 'sent' | 'corked' = 'idle'
  let pending = 0
  const flush = (): void => {
    if (turn !== 'corked') return
    turn = 'sent'
    pending = 0
    socket?.uncork()
  }
  const endTurn = (): void => { flush(); turn = 'idle' }
  return {
    peer,
    get isOpen () { return ws.readyState === ws.OPEN },
    get bufferedAmount () { return ws.bufferedAmount },
    listen (e) {
      ws.on('message', (data, isBinary) => e.frame(data as Buffer, isBinary))
      ws.on('error', (err) => e.error(err))
      ws.once('close', (code, reason) => { flush(); e.close(code, reason.toString()) })
    },
    send (bytes) {
      ws.send(bytes)
      if (turn === 'corked' && (pending += bytes.length) >= FLUSH_BYTES) flush()
    },
    batch () {
      if (socket === undefined) return
      if (turn === 'idle') {
        turn = 'sent'
        setImmediate(endTurn)
      } else if (turn === 'sent') {
        turn = 'corked'
        socket.cork()
      }
    },
    close (code, reason) {
      flush()
      if (ws.readyState === ws.CLOSED || ws.readyState === ws.CLOSING) return
      ws.close(code, reason)
    },
    terminate () { flush(); ws.terminate() }
  }
}

/** A batch this large goes out at once: a TLS record holds 16 KiB, and waiting gains nothing. */
const FLUSH_BYTES = 64 * 1024
