/**
 * One SWIM protocol period of failure detection, with Lifeguard's local health:
 *
 * 1. The next member of the round-robin (rotation.ts) gets a direct mesh.ping, with the
 *    changes queued piggybacked; the ack is expected within that member's own probe
 *    timeout (rtt.ts: `probeTimeoutMs`, or more for a member whose acks came late) ×
 *    (1 + local health).
 * 2. No ack yet: `indirectProbes` other members are asked to ping it (mesh.ping-req) over
 *    their own connections, until the end of the verdict window (the scaled period, or
 *    the member's timeout plus what the period leaves after `probeTimeoutMs`). The direct
 *    probe keeps waiting meanwhile, as memberlist's does: an ack that comes before the
 *    relays have all answered is an ack. Each relay
 *    answers ack or nack; one that does neither in time counts against this node's own
 *    health (it is likely the slow one), as does a probe with no ack at all; a timely
 *    direct ack counts for it.
 * 2b. The direct probe waits on past the verdict, up to the longest probe timeout: an
 *    ack that comes then is no rescue, but its round trip is a sample, so the next probe
 *    of that member waits long enough. Without it a member slower than the window would
 *    never give one.
 * 3. No ack at all: the member is suspect (suspicion.ts times it; others confirm it with
 *    their own failed probes), and it is told directly so that, if alive, it refutes.
 *
 * A period that ran much longer than it should (this node was paused or starved) gives
 * no verdict: the silence may be this node's own.
 */
import type { LocalHealth } from './health'
import type { MembershipOptions, PingOutcome } from './gossip'
import type { ProbeRing } from './rotation'
import { shuffle } from './rotation'
import type { Scheduler } from './scheduler'
import { RoundTrips } from './rtt'
import type { Member } from './types'

/** What a protocol period needs from the membership. */
export interface SwimHost {
  readonly o: MembershipOptions
  readonly clock: Scheduler
  readonly random: () => number
  readonly health: LocalHealth
  readonly ring: ProbeRing
  readonly isRunning: boolean
  readonly selfId: string
  peers (): Member[]
  member (id: string): Member | undefined
  ping (target: Member, timeoutMs: number): Promise<PingOutcome>
  pingReq (relay: Member, target: Member, timeoutMs: number): Promise<'ack' | 'nack' | 'none'>
  suspect (id: string, incarnation: number, reason: string): void
}

/**
 * The longest a direct probe waits before others are asked, whatever the member's
 * history: two periods. What a slow history adds to finding that member's crash is
 * bounded by it (less `probeTimeoutMs`), and the verdict window stays within the
 * 3 periods past which a round gives no verdict.
 */
export function maxProbeTimeoutMs (o: Pick<MembershipOptions, 'gossipIntervalMs' | 'probeTimeoutMs'>): number {
  return Math.max(o.probeTimeoutMs, 2 * o.gossipIntervalMs)
}

/**
 * Each membership's round trips, kept beside it rather than in it: the membership only
 * needs to hand over its SwimHost (see the report of issue 12 for moving it into gossip.ts).
 */
const trips = new WeakMap<SwimHost, RoundTrips>()

export function roundTripsOf (h: SwimHost): RoundTrips {
  let r = trips.get(h)
  if (r === undefined) {
    r = new RoundTrips({ minMs: h.o.probeTimeoutMs, maxMs: maxProbeTimeoutMs(h.o) })
    trips.set(h, r)
  }
  return r
}

export async function probeRound (h: SwimHost): Promise<void> {
  const peers = h.peers()
  const rtt = roundTripsOf(h)
  if (rtt.size > 2 * peers.length + 16) rtt.keepOnly(new Set(peers.map((m) => m.id)))
  const id = h.ring.next(new Set(peers.map((m) => m.id)))
  const target = id === undefined ? undefined : h.member(id)
  if (target === undefined) return
  const started = h.clock.now()
  const periodMs = h.health.scale(h.o.gossipIntervalMs)
  const timeoutMs = h.health.scale(rtt.timeoutFor(target.id))
  const windowMs = Math.max(periodMs, timeoutMs + h.health.scale(Math.max(0, h.o.gossipIntervalMs - h.o.probeTimeoutMs)))
  const direct = h.ping(target, windowMs + h.health.scale(maxProbeTimeoutMs(h.o))).then((outcome) => {
    if (outcome === 'ack') rtt.record(target.id, h.clock.now() - started)
    return outcome
  })
  const first = await within(h, direct, timeoutMs)
  if (first === 'ack') { h.health.lower(); return }
  if (!h.isRunning) return
  const relays = shuffle(peers.filter((m) => m.id !== target.id && m.status === 'alive'), h.random).slice(0, h.o.indirectProbes)
  const left = Math.max(h.o.probeTimeoutMs, started + windowMs - h.clock.now())
  const asked = Promise.all(relays.map(async (r) => await h.pingReq(r, target, left)))
  // A late direct ack counts until the relays have all answered, not to the end of the
  // window: waiting longer would delay every crash's suspicion for the rare slow member,
  // and the round would end past the next period's start, which then probes nobody.
  const late = first === 'late' ? await Promise.race([within(h, direct, left), asked.then(() => 'late' as const)]) : first
  const answers = await asked
  if (!h.isRunning) return
  const missedNacks = answers.filter((a) => a === 'none').length
  if (missedNacks > 0) h.health.raise(missedNacks)
  if (late === 'ack' || answers.includes('ack')) return
  if (h.clock.now() - started > 3 * periodMs) return
  h.health.raise()
  const how = first === 'other' || late === 'other' ? 'another member answers at its address' : 'no ack'
  h.suspect(target.id, target.incarnation, `${how} to a direct probe within ${Math.round(timeoutMs)} ms${relays.length === 0 ? '' : ` nor through ${relays.length} other member${relays.length === 1 ? '' : 's'}`}`)
}

/** What `p` gave within `ms`, or `late` (it goes on). */
async function within<T> (h: SwimHost, p: Promise<T>, ms: number): Promise<T | 'late'> {
  let timer: { cancel: () => void } | undefined
  const out = await Promise.race([p, new Promise<'late'>((resolve) => { timer = h.clock.after(ms, () => resolve('late')) })])
  timer?.cancel()
  return out
}
