/**
 * `cluster.stats()` as the REPL shows it: a table of nodes and a table of instances (plain
 * data underneath, so `-e` prints JSON), and `{ watch: ms }`: the tables redrawn in place
 * until Ctrl-C (with -e, one JSON line per refresh).
 */
import { inspect } from 'node:util'
import type { InstanceStats, NodeStatsRow, StatsView } from '../node/control/stats'
import { errorMessage } from '../node/errors'
import { formatDuration, textTable } from './render'
import type { Screen } from './screen'
import { compareIds, compareInstances } from '../node/vocabulary'

export class StatsReport {
  readonly answeredBy: string
  readonly at: number
  readonly nodes: NodeStatsRow[]
  constructor (v: StatsView) {
    this.answeredBy = v.answeredBy
    this.at = v.at
    this.nodes = v.nodes
  }

  [inspect.custom] (): string { return renderStats(this) }
}

export function mib (mb: number | undefined): string {
  if (mb === undefined) return ''
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GiB` : `${mb < 10 ? mb.toFixed(1) : Math.round(mb)} MiB`
}

const pct = (p: number | undefined): string => p === undefined ? '' : `${p < 10 ? p.toFixed(1) : Math.round(p)}%`

export function renderStats (v: StatsView): string {
  const nodeRows = v.nodes.flatMap((n) => n.status === 'unreachable'
    ? []
    : [[
        n.node,
        `${pct(n.cpuPercent)} of ${n.cpus}`,
        n.load.map((l) => l.toFixed(2)).join(' '),
        `${mib(n.memoryUsedMb)} / ${mib(n.memoryTotalMb)}`,
        mib(n.diskFreeMb),
        `${n.eventLoopDelayMs.p50}/${n.eventLoopDelayMs.p99} ms`,
        `${n.meshConnections.in}/${n.meshConnections.out ?? '?'}${n.meshConnections.operators > 0 ? ` +${n.meshConnections.operators} op` : ''}`,
        `${kbps(n.gossipBytesPerSec.sent)} / ${kbps(n.gossipBytesPerSec.received)}`,
        `${pct(n.nodeCpuPercent)} ${mib(n.nodeRssMb)}`,
        String(n.instances.length),
        refused(n.admissionRefusals)
      ]])
  const lines = [textTable(['node', 'cpu', 'load 1/5/15', 'memory used', 'disk free', 'loop p50/p99', 'mesh in/out', 'gossip out/in', 'node program', 'instances', 'refused'], nodeRows)]
  for (const n of v.nodes) if (n.status === 'unreachable') lines.push(`${n.node}: unreachable (${n.address}): ${n.reason}`)
  const instances: Array<InstanceStats & { node: string }> = v.nodes.flatMap((n) => n.status === 'ok' ? n.instances.map((i) => ({ ...i, node: n.node })) : [])
  if (instances.length > 0) {
    instances.sort((a, b) => compareInstances(a.instance, b.instance) || compareIds(a.node, b.node))
    lines.push('', textTable(['instance', 'node', 'state', 'cpu', 'memory', 'procs', 'restarts', 'uptime', 'port'], instances.map((i) => [
      i.instance, i.node, i.state, pct(i.cpuPercent), mib(i.memoryMb), i.processes === undefined ? '' : String(i.processes),
      String(i.restarts), i.uptimeMs === undefined ? '' : formatDuration(i.uptimeMs), i.port === undefined ? '' : String(i.port)
    ])))
  }
  return lines.join('\n')
}

/**
 * Fetch and show `once()` every `everyMs` until Ctrl-C; on a terminal each frame replaces the
 * last. A failed fetch is shown in the frame (the session may be reconnecting) and tried
 * again at the next tick. Resolves (with nothing) at Ctrl-C.
 */
export async function watchStats (once: () => Promise<StatsReport>, everyMs: number, screen: Screen): Promise<undefined> {
  let last: StatsReport | undefined
  let drawn = 0
  let stop = false
  const interrupted = screen.interrupted().then(() => { stop = true })
  while (!stop) {
    const t0 = Date.now()
    let body: string
    try {
      last = await Promise.race([once(), interrupted.then(() => last)]) ?? last
      if (stop) break
      body = screen.interactive ? renderStats(last!) : JSON.stringify(last)
    } catch (err) {
      if (stop) break
      body = screen.interactive ? `stats: ${errorMessage(err)}` : JSON.stringify({ error: errorMessage(err) })
    }
    if (screen.interactive) {
      const frame = `${new Date().toLocaleTimeString()}  every ${everyMs / 1000} s, Ctrl-C to stop\n${body}\n`
      screen.write((drawn > 0 ? `\x1b[${drawn}F\x1b[J` : '') + frame)
      drawn = rowsOf(frame, screen.columns)
    } else {
      screen.write(body + '\n')
    }
    await Promise.race([new Promise((resolve) => setTimeout(resolve, Math.max(0, everyMs - (Date.now() - t0)))), interrupted])
  }
  return undefined // the last frame stays on the screen; printing it again would only repeat it
}

/** Terminal rows `text` takes, long lines wrapping at `columns`. */
function rowsOf (text: string, columns = 80): number {
  return text.replace(/\n$/, '').split('\n').reduce((n, line) => n + Math.max(1, Math.ceil(line.length / Math.max(1, columns))), 0)
}

/** Admission refusals by service, `web 12, api 3`; a node from before the field shows nothing. */
function refused (by: Record<string, number> | undefined): string {
  return Object.entries(by ?? {}).map(([svc, n]) => `${svc} ${n}`).join(', ')
}

/** Bytes per second as a person reads them: `830 B/s`, `12.4 kB/s`. */
function kbps (bytesPerSec: number): string {
  return bytesPerSec < 1000 ? `${bytesPerSec} B/s` : `${(bytesPerSec / 1000).toFixed(1)} kB/s`
}
