/**
 * Which members keep the copies of an instance's snapshots: rendezvous (highest random
 * weight) hashing on the instance id. Each member gets a score hash(instance, member); the
 * `copies` highest hold the copies. Pure and stable as members come and go: a member that
 * leaves moves only the copy it held, a member that joins takes at most one.
 */
import { createHash } from 'node:crypto'

export function rendezvousScore (instance: string, member: string): string {
  return createHash('sha256').update(instance).update('\0').update(member).digest('hex')
}

/** The `copies` members (of `candidates`, this node left out by the caller) that hold copies of `instance`, best first. */
export function copyHolders (instance: string, candidates: Iterable<string>, copies: number): string[] {
  return [...new Set(candidates)]
    .map((id) => ({ id, score: rendezvousScore(instance, id) }))
    .sort((a, b) => (a.score < b.score ? 1 : a.score > b.score ? -1 : a.id < b.id ? -1 : 1))
    .slice(0, Math.max(0, copies))
    .map((s) => s.id)
}
