/**
 * The simulation's time is the node's virtual clock (node/clock/virtual.ts); this module
 * adds the seeded randomness that makes a run repeatable.
 */
export { VirtualClock } from '../node/clock/virtual'

/** A seeded generator (mulberry32): the same seed, the same run. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
