/**
 * What an operator can call in the REPL, in one place: `.help`, `cluster.help(name)`,
 * typing `cluster`, and Tab completion all read this list. Each entry: the signature, one
 * line saying what it gives, an example, and what its arguments name (for completion).
 */
import { inspect } from 'node:util'

/** What an argument names, so Tab can offer the names the cluster has. */
export type ArgKind = 'node' | 'service' | 'node-or-service' | 'log' | 'method' | 'other'

export interface Entry {
  name: string
  signature: string
  summary: string
  /** More, for `cluster.help(name)`. */
  details?: string
  example: string
  args: ArgKind[]
}

export const clusterMethods: Entry[] = [
  { name: 'nodes', signature: 'nodes(): Promise<NodeTable>', summary: 'the member table: id, address, status, hub, cpus, memory, arch, uptime, labels', example: 'await cluster.nodes()', args: [] },
  { name: 'hubs', signature: 'hubs(): Promise<HubSet>', summary: 'the hub set, strongest first, and the policy that chose it', example: 'await cluster.hubs()', args: [] },
  { name: 'spec', signature: 'spec(): Promise<SpecReport>', summary: 'the applied spec, what each node runs, the last rejected commit and why, the rollout', example: 'await cluster.spec()', args: [] },
  { name: 'sync', signature: 'sync(): Promise<SyncReport>', summary: 'fetch the spec repo now (what each hub did)', example: 'await cluster.sync()', args: [] },
  { name: 'services', signature: 'services(): Promise<ServicesReport>', summary: 'every service: instances, node, address, status and why, restarts, uptime; the phase', example: 'await cluster.services()', args: [] },
  { name: 'where', signature: 'where(service: string): Promise<ServicesReport>', summary: 'where one service runs, with each instance\'s address and ports', example: "await cluster.where('web')", args: ['service'] },
  { name: 'phase', signature: 'phase(): Promise<string>', summary: 'forming, running or degraded, and why', example: 'await cluster.phase()', args: [] },
  { name: 'stats', signature: 'stats(opts?: { watch?: number }): Promise<StatsReport>', summary: 'CPU, memory, load, disk, event-loop delay, mesh per node; CPU, memory, restarts, uptime, port per instance; { watch: ms } refreshes until Ctrl-C', example: 'await cluster.stats({ watch: 2000 })', args: [] },
  {
    name: 'logs',
    signature: 'logs(node: string, service: string, opts?: { lines?, since?, follow?, dir? }): Promise<string>\n      logs(service: string, opts?: { lines?, since?, dir? }): Promise<string>',
    summary: "download logs, return the path: a service's (or 'node') log on one node, or every instance of a service; since: '10m', '2h', a date or an ISO string",
    details: "With a node: to ./logs/<node>/<service>.log, every instance that ran there, rotated parts in order; 'node' is the node's own log,\n  'build-<service>' a build's output; follow keeps appending until cluster.unfollow(). Without a node: every instance on every node,\n  to ./logs/<service>/<node>/<instance>.log; returns the directory.",
    example: "open(await cluster.logs('node-1', 'web', { since: '10m' }))\n      open(await cluster.logs('web', { lines: 200 }))",
    args: ['node-or-service', 'log']
  },
  { name: 'events', signature: "events(opts?: { since?, node?, service?, follow? }): Promise<EventList>", summary: "every node's journal merged in time order: members, hubs, spec applied/rejected, instances with reasons, rollouts, operators; since defaults to '1h'", details: 'follow keeps printing new entries until Ctrl-C. Each entry is also data: kind, at, node and its fields (-e prints JSON).', example: "await cluster.events({ since: '10m', service: 'web' })", args: [] },
  { name: 'state', signature: 'state(opts?: { at? }): Promise<StateReport>', summary: 'the whole cluster as plain text: members, hubs, spec per node, services and instances with addresses and reasons, phase, recent events; { at } replays the journals to that moment', details: 'String(await cluster.state()) is the text; .state the JSON. at takes a Date, an ISO string or ms.', example: "await cluster.state({ at: '2026-05-01 14:00' })", args: [] },
  { name: 'save', signature: 'save(dir: string): Promise<SaveReport>', summary: "a support bundle: state.txt, state.json, every node's journal and log, every instance log", example: "await cluster.save('support-2026-05-01')", args: ['other'] },
  { name: 'quiet', signature: 'quiet(on?: boolean): string', summary: 'switch off (or on again) the live lines: spec applied/rejected and rollout steps printed above the prompt', example: 'cluster.quiet()', args: [] },
  { name: 'unfollow', signature: 'unfollow(): Promise<void>', summary: 'stop following every log (the files stay)', example: 'await cluster.unfollow()', args: [] },
  { name: 'on', signature: 'on(node: string).eval(code: string, opts?: { timeoutMs? }): Promise<unknown>', summary: 'evaluate TypeScript on that node and return the value; the code sees a read-only `node` and nothing else', details: "node: id, members, spec, instances, process, journal. Stopped after its time limit (1 s). Only operators in cluster.json's\n  operators.eval may; every evaluation is journaled with the operator and the code.", example: "await cluster.on('node-2').eval('node.instances.map((i) => i.instance)')", args: ['node'] },
  { name: 'each', signature: 'each(code: string, opts?: { timeoutMs? }): Promise<Array<{ node, value } | { node, error }>>', summary: "evaluate on every node at once: each node's value or error", example: "await cluster.each('node.process.rssMb')", args: ['other'] },
  { name: 'restart', signature: 'restart(target: string): Promise<{ target, restarted }>', summary: "restart a service's instances ('web') or one ('web-1') in place, one at a time, each ready before the next", example: "await cluster.restart('web')", args: ['service'] },
  { name: 'drain', signature: 'drain(node: string): Promise<{ node, drained }>', summary: 'move every instance off a node and keep it empty, across its restarts, until undrain', example: "await cluster.drain('node-3')", args: ['node'] },
  { name: 'undrain', signature: 'undrain(node: string): Promise<{ node, drained }>', summary: 'a drained node hosts instances again', example: "await cluster.undrain('node-3')", args: ['node'] },
  { name: 'forget', signature: 'forget(node: string): Promise<{ forgotten }>', summary: 'a dead node is gone for good: it becomes left and stops counting against the singleton majority', example: "await cluster.forget('node-3')", args: ['node'] },
  { name: 'ping', signature: 'ping(): Promise<{ node, ms }>', summary: 'which node answered, and the round trip in ms', example: 'await cluster.ping()', args: [] },
  { name: 'call', signature: 'call(method: string, payload?: unknown): Promise<unknown>', summary: 'any operator method by name, for what has no helper yet', example: "await cluster.call('cluster.ping')", args: ['method'] },
  { name: 'help', signature: 'help(name?: string): Help', summary: 'this list, or one method\'s signature and an example', example: "cluster.help('logs')", args: ['method'] }
]

export const openEntry: Entry = {
  name: 'open',
  signature: 'open(path: string): Promise<string>',
  summary: 'open a file (a downloaded log) in $VISUAL / $EDITOR; the REPL comes back when the editor exits',
  example: "open(await cluster.logs('node-1', 'node'))",
  args: ['other']
}

export const replCommands: Array<[string, string]> = [
  ['.help', 'this list'],
  ['.debug', 'show the stack of errors (again to hide them)'],
  ['.editor', 'enter several lines, Ctrl-D to run them'],
  ['.exit', 'leave (Ctrl-D too)']
]

/** Text that prints as itself in the REPL (and as `{ "text": ... }` with -e). */
export class Help {
  constructor (readonly text: string) {}
  [inspect.custom] (): string { return this.text }
  toString (): string { return this.text }
}

const column = (left: string, right: string, width: number): string => `  ${left.padEnd(width)}  ${right}`

/** The cluster.* part of the list. */
export function clusterList (): string {
  const calls = clusterMethods.map((m) => [`cluster.${m.name}(${m.args.length === 0 ? '' : '…'})`, m.summary] as const)
  const width = Math.max(...calls.map(([l]) => l.length))
  return calls.map(([l, r]) => column(l, r, width)).join('\n')
}

/** `.help`: every cluster.* method, the spec's ops.*, open, and the REPL commands, one line each. */
export function helpText (o: { connected: string, ops: Record<string, unknown>, opsDocs?: Record<string, string>, opsProblems?: string[] }): string {
  const ops = Object.entries(o.ops).filter(([, v]) => typeof v === 'function')
  const lines = [`cluster: ${o.connected}`, clusterList(), '', "ops: the spec repo's ops/*.ts, reloaded when the spec changes"]
  if (ops.length === 0) lines.push('  (none)')
  else {
    const calls = ops.map(([name, fn]) => `ops.${name}(${paramsOf(fn as (...a: unknown[]) => unknown)})`)
    const width = Math.max(...calls.map((c) => c.length))
    for (const [i, c] of calls.entries()) lines.push(column(c, o.opsDocs?.[ops[i]![0]] ?? '', width))
  }
  for (const p of o.opsProblems ?? []) lines.push(`  problem: ${p}`)
  lines.push('', column(`${openEntry.name}(path)`, openEntry.summary, 18), '', 'commands:')
  for (const [c, what] of replCommands) lines.push(column(c, what, 8))
  lines.push('', "cluster.help('logs') shows a method's signature and an example; Tab completes methods, node ids and service names.")
  return lines.join('\n')
}

/** `cluster.help(name)`: the signature and an example; unknown names get the list. */
export function methodHelp (name: string): string | undefined {
  const m = name === 'open' ? openEntry : clusterMethods.find((e) => e.name === name.replace(/^cluster\./, '').replace(/\(.*$/, ''))
  if (m === undefined) return undefined
  const prefix = m === openEntry ? '' : 'cluster.'
  return `${prefix}${m.signature}\n  ${m.summary}${m.details === undefined ? '' : `\n  ${m.details}`}\n  e.g. ${m.example}`
}

function paramsOf (fn: (...a: unknown[]) => unknown): string {
  const m = /^[^(]*\(([^)]*)\)/.exec(Function.prototype.toString.call(fn))
  return (m?.[1] ?? '').replace(/\s+/g, ' ').trim()
}
