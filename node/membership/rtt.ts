/**
 * Probe timeouts that follow each member's round-trip times. A fixed `probeTimeoutMs`
 * takes a member that always answers a little late (an overloaded machine, a far link)
 * for a silent one on every probe: suspected, refuted, suspected again, for ever. Here
 * the direct probe of a member waits
 *
 *   clamp(k × recent peak RTT of that member, probeTimeoutMs, maxMs)
 *
 * The recent peak stands in for a high percentile: it jumps to any sample above it and
 * sinks toward the lower ones by `decay` a sample, so one GC pause widens the timeout
 * for a few probes, not for ever. One number per member, not a window of samples: a
 * simulated node of a 5,000-node cluster probes thousands of members.
 *
 * `maxMs` bounds what a slow history can add to finding a crash: a member that was slow
 * and then dies is suspected at most `maxMs − probeTimeoutMs` later than a fast one.
 * Time is an argument: no clock here.
 */

export interface RttOptions {
  /** Timeout for a member with no sample, and the least for any. */
  minMs: number
  /** The most a direct probe waits, whatever the member's history. */
  maxMs: number
  /** Headroom over the recent peak RTT. @default 1.5 */
  k?: number
  /** How far the peak sinks toward a lower sample, per sample (0..1). @default 0.125 */
  decay?: number
}

/** The next recent-peak estimate after `sampleMs`. */
export function nextPeak (peak: number | undefined, sampleMs: number, decay = 0.125): number {
  if (peak === undefined || sampleMs >= peak) return sampleMs
  return peak - (peak - sampleMs) * decay
}

/** The direct probe timeout for a member whose recent peak RTT is `peak` (none: no sample yet). */
export function probeTimeout (o: RttOptions, peak: number | undefined): number {
  const wanted = peak === undefined ? o.minMs : Math.ceil((o.k ?? 1.5) * peak)
  return Math.min(Math.max(o.minMs, o.maxMs), Math.max(o.minMs, wanted))
}

/** Recent peak RTT per member. Bounded by the members it is told to keep (see `keepOnly`). */
export class RoundTrips {
  private readonly peaks = new Map<string, number>()

  constructor (private readonly o: RttOptions) {}

  get size (): number { return this.peaks.size }

  /** An ack from `id` came `ms` after its probe was sent. */
  record (id: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return
    this.peaks.set(id, nextPeak(this.peaks.get(id), ms, this.o.decay))
  }

  peak (id: string): number | undefined { return this.peaks.get(id) }

  /** How long a direct probe of `id` waits before others are asked (before local health stretches it). */
  timeoutFor (id: string): number { return probeTimeout(this.o, this.peaks.get(id)) }

  /** Forget members no longer probed (dead, left, downed). */
  keepOnly (ids: ReadonlySet<string>): void {
    for (const id of this.peaks.keys()) if (!ids.has(id)) this.peaks.delete(id)
  }
}
