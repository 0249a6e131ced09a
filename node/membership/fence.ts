/**
 * How long singleton fencing must look back, and so how long a suspect must have at
 * least, for a cluster of n members. The supervisor keeps a singleton only while this node
 * was in touch with a majority (`reachable(window)`): direct messages either way, which
 * come at about 2 × (1 + `fanout`) a period to members picked at random (its probe and
 * 2 × `fanout` pings while it keeps in touch, and the one probe others send it on average). Past some 20 members a fixed 600 ms holds too few of them:
 * in the simulation of 50 nodes a node is out of touch with a majority in 96% of checks,
 * so every singleton is fenced at once. The window here is long enough to expect half
 * again the members a majority needs; the shortest suspicion timeout must not be shorter,
 * or the majority could declare a cut-off node dead (and start its singleton elsewhere)
 * before it notices it is cut off.
 *
 * The window grows about linearly with n (1.8 s at 50 members, 3.6 s at 100, 35 s at
 * 1,000 with the defaults): touching a majority directly takes that many messages. It
 * never goes below `suspectAfterMs`. Pure: the member count is an argument.
 */

export interface FenceSettings { gossipIntervalMs: number, fanout: number, suspectAfterMs: number }

/** Margin over the members a majority needs: checks at any moment stay above it. */
const MARGIN = 1.5

/** Distinct members a node is expected to have touched, of `others`, after `contacts` uniform picks. */
export function expectedTouched (others: number, contacts: number): number {
  return others <= 0 ? 0 : others * (1 - (1 - 1 / others) ** contacts)
}

/** The fence window (and least suspicion timeout) for `members` members, this node included. */
export function fenceWindowMs (o: FenceSettings, members: number): number {
  const others = members - 1
  const needed = Math.floor(members / 2)
  if (others <= 1 || needed === 0) return o.suspectAfterMs
  const target = Math.min(others - 0.5, needed * MARGIN)
  const contacts = Math.log(1 - target / others) / Math.log(1 - 1 / others)
  const periods = Math.ceil(contacts / (2 * (1 + Math.max(0, o.fanout))))
  return Math.max(o.suspectAfterMs, periods * o.gossipIntervalMs)
}
