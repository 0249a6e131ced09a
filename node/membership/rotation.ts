/**
 * Which member to probe next: SWIM's round-robin over a shuffled list, so every member is
 * probed by this node within one pass of the list (bounded detection time), in an order
 * no two nodes share (so probes of one member spread over the period). Members that join
 * go in at a random place of the pass under way; ones that leave are skipped. A new
 * shuffle starts each pass. `random` is an argument (seeded in the simulation).
 */

export class ProbeRing {
  private order: string[] = []
  private at = 0

  constructor (private readonly random: () => number) {}

  /** The next member of `eligible` (members to probe now) to probe, or none. */
  next (eligible: ReadonlySet<string>): string | undefined {
    if (eligible.size === 0) return undefined
    for (let tries = 0; tries < 2; tries++) {
      while (this.at < this.order.length) {
        const id = this.order[this.at++]
        if (eligible.has(id)) return id
      }
      this.order = shuffle([...eligible].sort(), this.random)
      this.at = 0
    }
    return undefined
  }

  /** The member `next` gave last (undefined before the first). */
  get last (): string | undefined {
    return this.at > 0 ? this.order[this.at - 1] : undefined
  }

  /** `id` joined: probe it within this pass, at a random place among those still to come. */
  add (id: string): void {
    if (this.order.includes(id)) return
    const at = this.at + Math.floor(this.random() * (this.order.length - this.at + 1))
    this.order.splice(at, 0, id)
  }
}

/**
 * The members a period's pings go to besides its probe: `fanout` of `peers` at random, never
 * `probed`, the member the probe went to. In a small cluster the probe's member would
 * otherwise get two pings a period (with 3 nodes, a third of every node's frames).
 */
export function fanoutTargets<M extends { id: string }> (peers: readonly M[], probed: string | undefined, fanout: number, random: () => number): M[] {
  const others = probed === undefined ? peers : peers.filter((m) => m.id !== probed)
  return shuffle(others, random).slice(0, fanout)
}

/** A Fisher–Yates shuffle with the given randomness (a new array). */
export function shuffle<T> (items: readonly T[], random: () => number): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]]
  }
  return a
}
