/** The simulation's figures and how they read. */

export interface Figures {
  args: { nodes: number, scenario: string, seed: number, membership: Record<string, unknown> } & Record<string, unknown>
  /** Virtual time from the first node's start until every node holds every other alive. */
  formedMs?: number
  /** Each join after forming: until the new node and every live node hold each other alive. */
  joins: number[]
  /** Each (observer, crashed member): crash -> dead in that observer's table. */
  detections: number[]
  /** Each crash: crash -> dead in every live node's table. */
  deadOnAll: number[]
  falseSuspicions: number
  falseDeaths: number
  steady?: { msgsPerNodeS: number, bytesPerNodeS: number, maxMsgsPerNodeS: number, maxBytesPerNodeS: number }
  underLoss?: Figures['steady']
  lossyNode?: string
  /** What the slow and oneway scenarios did, in words. */
  affected?: string
  partitionSeenMs?: number
  healedMs?: number
  wallS?: number
  virtualS?: number
  events?: number
}

/** The `p`th percentile (0..100) of `xs`, nearest rank. */
export function percentile (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]
}

const ms = (x: number | undefined): string => x === undefined || Number.isNaN(x) ? '-' : x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`
const dist = (xs: number[]): string => xs.length === 0 ? '-' : `p50 ${ms(percentile(xs, 50))}, p99 ${ms(percentile(xs, 99))}, max ${ms(Math.max(...xs))} (${xs.length} samples)`
const rate = (t: Figures['steady']): string => t === undefined ? '-' : `${t.msgsPerNodeS.toFixed(1)} msgs/s, ${(t.bytesPerNodeS / 1024).toFixed(1)} KiB/s sent per node (max ${t.maxMsgsPerNodeS.toFixed(1)} msgs/s, ${(t.maxBytesPerNodeS / 1024).toFixed(1)} KiB/s)`

export function report (f: Figures): string {
  const m = f.args.membership
  const lines = [
    `sim: ${f.args.nodes} nodes, scenario ${f.args.scenario}, seed ${f.args.seed}; period ${String(m.gossipIntervalMs)} ms, suspicion ${String(m.suspectAfterMs)}..${String(m.deadAfterMs)} ms, probe timeout ${String(m.probeTimeoutMs)} ms, k ${String(m.indirectProbes)}`,
    `  formed (every node holds every other alive): ${ms(f.formedMs)}`,
    `  join -> converged: ${dist(f.joins)}`,
    `  steady traffic: ${rate(f.steady)}`
  ]
  if (f.detections.length > 0) {
    lines.push(`  crash -> dead, per observer: ${dist(f.detections)}`)
    lines.push(`  crash -> dead on all: ${dist(f.deadOnAll)}`)
  }
  if (f.underLoss !== undefined) lines.push(`  ${f.affected !== undefined ? `while ${f.affected}` : `with loss on ${f.lossyNode ?? '?'}`}: ${rate(f.underLoss)}`)
  if (f.partitionSeenMs !== undefined) lines.push(`  partition -> each side holds the other dead: ${ms(f.partitionSeenMs)}; healed -> converged: ${ms(f.healedMs)}`)
  lines.push(`  false suspicions: ${f.falseSuspicions}, false deaths: ${f.falseDeaths}`)
  lines.push(`  ${f.events ?? 0} events, ${f.virtualS?.toFixed(0) ?? '?'} s virtual in ${f.wallS?.toFixed(1) ?? '?'} s`)
  return lines.join('\n')
}
