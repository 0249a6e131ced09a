/**
 * The decision `prepare` makes, as a pure function of what this node knows: its own
 * directory and generation, the highest generation other members published, and what the
 * reachable members hold. No clock, no I/O.
 *
 * Generations: each time an instance starts on a node with state it did not already hold,
 * it gets a generation one above any this node has heard of. A directory whose generation
 * is below one the cluster has seen is stale: it is never used as if nothing happened (the
 * fail-back bug: an old node restarting on its pre-crash data while the writes made since
 * are elsewhere).
 */
import type { StateMode } from '../desired/types'

/** A directory or snapshot some member holds (this node included). */
export interface Source {
  node: string
  /** `live`: the instance's own directory there; `copy`: a snapshot kept there. */
  kind: 'live' | 'copy'
  generation: number
  /** How old the contents are: 0 while the instance runs there, else since it stopped, or since the snapshot was taken. */
  ageMs: number
  /** live: the instance runs there right now (its directory is still changing). */
  running: boolean
  /** live: the instance there has a `before` hook, so a copy taken while it runs is consistent. */
  hook: boolean
  /** copy: the node that took the snapshot (it may have handed it over to `node`). */
  takenBy?: string
}

export interface DecisionInput {
  self: string
  mode: StateMode
  /** This node's directory: whether it exists, the generation its marker records, how long since it was last used. */
  local: { exists: boolean, generation?: number, ageMs: number }
  /** The highest generation another member published (gossip, remembered across restarts); 0: none. */
  seen: { generation: number, node?: string }
  /** What reachable members hold (answers to `state.holdings`) and this node's own snapshot copy. Not this node's directory. */
  sources: Source[]
}

export type Decision =
  | { kind: 'keep', generation: number, reason: string }
  /** Start empty; `stale`: the generation of this node's directory, moved aside first. */
  | { kind: 'empty', generation: number, stale?: number, reason: string }
  /** Start from `from`; `stale` as above (absent when `from` is this node's own directory, used in place). */
  | { kind: 'restore', generation: number, from: Source, stale?: number, reason: string }

export function decide (i: DecisionInput): Decision {
  const top = highest(i)
  const localGen = i.local.generation ?? 0
  if (i.local.exists && localGen >= top.generation) {
    return i.local.generation === undefined
      ? { kind: 'keep', generation: 1, reason: 'kept a directory that had no generation record; now generation 1' }
      : { kind: 'keep', generation: localGen, reason: `kept (generation ${localGen})` }
  }
  const next = Math.max(top.generation, localGen) + 1
  const stale = i.local.exists ? localGen : undefined
  const own: Source[] = i.local.exists ? [{ node: i.self, kind: 'live', generation: localGen, ageMs: i.local.ageMs, running: false, hook: false }] : []
  const candidates = i.mode === 'local'
    ? []
    : [...own, ...i.sources.filter((s) => i.mode === 'replicate' || s.kind === 'live' || isHandOver(s, top))]
  const from = candidates.sort(fresherFirst(i.self))[0]
  if (from === undefined) return { kind: 'empty', generation: next, stale, reason: emptyReason(i, top, localGen, next) }
  const inPlace = from.node === i.self && from.kind === 'live'
  let reason = i.mode === 'migrate' && from.kind === 'copy'
    ? `copied the directory of generation ${from.generation} that ${from.takenBy ?? '?'} handed over when it left; now generation ${next}`
    : restoreReason(i.self, from, next)
  if (from.generation < top.generation) reason += `; generation ${top.generation} (last on ${top.node ?? 'another node'}) is not reachable: what was written there is not in it`
  return { kind: 'restore', generation: next, from, stale: inPlace ? undefined : stale, reason }
}

/**
 * migrate takes directories, and a copy only when it is what a leaving node handed over: of
 * the newest generation, taken by the node that ran it (after its instance stopped there).
 */
function isHandOver (s: Source, top: { generation: number, node?: string }): boolean {
  return s.kind === 'copy' && s.generation >= top.generation && s.takenBy !== undefined && s.takenBy === top.node
}

/** The highest generation known anywhere but this node's own directory, and where it was. */
function highest (i: DecisionInput): { generation: number, node?: string } {
  let top = { generation: i.seen.generation, node: i.seen.node }
  for (const s of i.sources) if (s.generation > top.generation) top = { generation: s.generation, node: s.node }
  return top
}

/** Newer generation first; then fresher contents; then this node (no transfer), a directory before a snapshot, by node id. */
function fresherFirst (self: string) {
  return (a: Source, b: Source): number =>
    b.generation - a.generation ||
    a.ageMs - b.ageMs ||
    Number(b.node === self) - Number(a.node === self) ||
    Number(b.kind === 'live') - Number(a.kind === 'live') ||
    (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)
}

function emptyReason (i: DecisionInput, top: { generation: number, node?: string }, localGen: number, next: number): string {
  if (top.generation === 0 && localGen === 0) return 'starts empty (first start, generation 1)'
  if (top.generation === 0) return `starts empty: the directory of generation ${localGen} is gone from this node; now generation ${next}`
  const where = top.node ?? 'another node'
  if (i.mode === 'local') return `starts empty: the state of generation ${top.generation} stayed on ${where} (mode local); now generation ${next}`
  const what = i.mode === 'replicate' ? 'its directory or a snapshot' : 'its directory'
  return `starts empty: no reachable member holds ${what} (generation ${top.generation}, last on ${where}); now generation ${next}`
}

function restoreReason (self: string, from: Source, next: number): string {
  if (from.kind === 'live' && from.node === self) return `continues with this node's directory of generation ${from.generation}, the freshest reachable; now generation ${next}`
  if (from.kind === 'live') {
    const when = from.running ? 'while it still ran there, after its before hook' : `stopped ${formatAge(from.ageMs)} ago`
    return `copied the directory of generation ${from.generation} from ${from.node} (${when}); now generation ${next}`
  }
  const where = from.node === self ? 'this node' : from.node
  return `restored the snapshot of generation ${from.generation} from ${where}, taken ${formatAge(from.ageMs)} ago; now generation ${next}`
}

/** `850 ms`, `2.4 s`, `3 min`, `5.0 h`, `2.1 days`. */
export function formatAge (ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`
  if (ms < 2 * 3_600_000) return `${Math.round(ms / 60_000)} min`
  if (ms < 48 * 3_600_000) return `${(ms / 3_600_000).toFixed(1)} h`
  return `${(ms / 86_400_000).toFixed(1)} days`
}
