/**
 * Frames out of one connection: encoded, and checked against the limits the peer applies
 * (the same on both ends), so a frame the peer would close the connection on is never sent.
 * An answer that cannot go is replaced by an error frame saying why; a request that cannot
 * go fails its call.
 */
import { OriginError, asOriginError } from '../errors'
import type { Logger } from '../log'
import type { FrameChannel } from './channel'
import { boundedError, clip, encodeFrame, type Frame } from './frames'
import { scanMsgpack, type ScanLimits } from './scan'

const an = (word: string): string => /^[aeiou]/.test(word) ? 'an' : 'a'

export class Outbound {
  /** Frames this short cannot cross either scan limit (every value takes a byte). */
  private readonly unscanned: number

  constructor (
    private readonly channel: FrameChannel,
    private readonly maxFrameBytes: number,
    private readonly scan: ScanLimits,
    private readonly log: Logger,
    private readonly describePeer: () => string
  ) {
    this.unscanned = Math.min(scan.maxElements, scan.maxDepth)
  }

  /** Sends a frame; returns the bytes sent (0 when nothing was). Throws for a request that cannot go. */
  send (frame: Frame): number {
    if (!this.channel.isOpen) return 0
    // An error frame is cut to a few kB (config.ts, errorFrameBounds), so it always fits.
    const bytes = encodeFrame(frame.t === 'err' ? { ...frame, e: boundedError(frame.e) } : frame)
    const problem = this.unsendable(bytes, frame.t)
    if (problem === undefined) { this.channel.batch(); this.channel.send(bytes); return bytes.length }
    // The peer would close the connection on it: answer that one call with the reason instead.
    this.log.warn(`not sending ${problem.message} to ${this.describePeer()}`)
    if (frame.t === 'req') throw problem
    if (frame.t === 'err') { this.channel.send(encodeFrame({ t: 'err', id: frame.id, e: { code: frame.e.code, message: clip(frame.e.message, 200) } })); return 0 }
    return this.send({ t: 'err', id: frame.id, e: problem.toJSON() })
  }

  /** Why the peer would refuse these bytes, if it would. */
  private unsendable (bytes: Buffer, t: Frame['t']): OriginError | undefined {
    if (bytes.length > this.maxFrameBytes) {
      return new OriginError('E_FRAME_TOO_LARGE', `${an(t)} ${t} frame of ${bytes.length} bytes is over the ${this.maxFrameBytes} byte limit`, { size: bytes.length })
    }
    if (bytes.length <= this.unscanned) return undefined
    try {
      scanMsgpack(bytes, this.scan)
      return undefined
    } catch (err) {
      const e = asOriginError(err)
      return new OriginError(e.code, `${an(t)} ${t} ${e.message}`, e.data)
    }
  }
}
