/**
 * One SWIM protocol period of failure detection, with Lifeguard's local health:
 *
 * 1. The next member of the round-robin (rotation.ts) gets a direct mesh.ping, with the
 *    changes queued piggybacked; the ack must come within `probeTimeoutMs` × (1 + local
 *    health).
 * 2. No ack: `indirectProbes` other members are asked to ping it (mesh.ping-req) over
 *    their own connections, until the end of the (scaled) period. Each answers ack or
 *    nack; a relay that does neither in time counts against this node's own health (it
 *    is likely the slow one), as does a probe with no ack at all; a timely direct ack
 *    counts for it.
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

export async function probeRound (h: SwimHost): Promise<void> {
  const peers = h.peers()
  const id = h.ring.next(new Set(peers.map((m) => m.id)))
  const target = id === undefined ? undefined : h.member(id)
  if (target === undefined) return
  const started = h.clock.now()
  const periodMs = h.health.scale(h.o.gossipIntervalMs)
  const direct = await h.ping(target, h.health.scale(h.o.probeTimeoutMs))
  if (direct === 'ack') { h.health.lower(); return }
  if (!h.isRunning) return
  const relays = shuffle(peers.filter((m) => m.id !== target.id && m.status === 'alive'), h.random).slice(0, h.o.indirectProbes)
  const left = Math.max(h.o.probeTimeoutMs, started + periodMs - h.clock.now())
  const answers = await Promise.all(relays.map(async (r) => await h.pingReq(r, target, left)))
  if (!h.isRunning) return
  const missedNacks = answers.filter((a) => a === 'none').length
  if (missedNacks > 0) h.health.raise(missedNacks)
  if (answers.includes('ack')) return
  if (h.clock.now() - started > 3 * periodMs) return
  h.health.raise()
  const how = direct === 'other' ? 'another member answers at its address' : 'no ack'
  h.suspect(target.id, target.incarnation, `${how} to a direct probe${relays.length === 0 ? '' : ` nor through ${relays.length} other member${relays.length === 1 ? '' : 's'}`}`)
}
