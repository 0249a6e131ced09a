/**
 * Tab in the REPL: `cluster.` offers the public methods (catalog.ts) and nothing of the
 * object's insides; `ops.` the spec's helpers; inside a method's quotes, the names that
 * argument takes: node ids, service names, `'node'` for logs. Anything else goes to Node's
 * own completion, without `__proto__` and the like.
 */
import type { Cluster } from './client'
import { clusterMethods, type ArgKind } from './catalog'
import { call } from '../node/protocol/table'
import { operator } from '../node/protocol/operator'

export type Completer = (line: string, cb: (err: Error | null, result?: [string[], string]) => void) => void

/** Operator methods `cluster.call` takes. */
const RPC_METHODS = ['cluster.nodes', 'cluster.hubs', 'cluster.spec', 'cluster.sync', 'cluster.services', 'cluster.where', 'cluster.logs', 'cluster.ops', 'cluster.forget', 'cluster.ping', 'cluster.stats']
const NAMES_TTL_MS = 5000

export function completer (o: { cluster: Cluster, ops: Record<string, unknown>, fallback: Completer }): Completer {
  let services: { at: number, names: Promise<string[]> } | undefined
  const serviceNames = async (): Promise<string[]> => {
    if (services === undefined || Date.now() - services.at > NAMES_TTL_MS) {
      services = {
        at: Date.now(),
        names: call(o.cluster.link, operator, 'cluster.services', undefined, { timeoutMs: 1500 })
          .then((v) => v.services.map((s) => s.name), () => [])
      }
    }
    return await services.names
  }
  const nodeIds = (): string[] => o.cluster.link.members().filter((m) => m.status !== 'left').map((m) => m.id).sort()
  const namesFor = async (method: string, kind: ArgKind | undefined): Promise<string[]> => {
    switch (kind) {
      case 'node': return nodeIds()
      case 'service': return await serviceNames()
      case 'node-or-service': return [...nodeIds(), ...await serviceNames()]
      case 'log': { const s = await serviceNames(); return ['node', ...s, ...s.map((n) => `build-${n}`)] }
      case 'method': return method === 'call' ? RPC_METHODS : [...clusterMethods.map((m) => m.name), 'open']
      default: return []
    }
  }
  return (line, cb) => {
    const arg = /(?:^|[^\w$.])cluster\.(\w+)\(\s*((?:(['"`])[^'"`]*\3\s*,\s*)*)(['"`])([^'"`]*)$/.exec(line)
    if (arg !== null) {
      const [, method, before, , , partial] = arg as unknown as [string, string, string, string, string, string]
      const index = (before.match(/,/g) ?? []).length
      const entry = clusterMethods.find((m) => m.name === method)
      void namesFor(method, entry?.args[index]).then((names) => cb(null, [unique(names).filter((n) => n.startsWith(partial)), partial]), () => cb(null, [[], partial]))
      return
    }
    const member = /(?:^|[^\w$.])(cluster|ops)\.(\w*)$/.exec(line)
    if (member !== null) {
      const [, object, partial] = member as unknown as [string, string, string]
      const names = object === 'cluster' ? clusterMethods.map((m) => m.name) : Object.keys(o.ops)
      cb(null, [names.filter((n) => n.startsWith(partial)).map((n) => n), partial])
      return
    }
    o.fallback(line, (err, result) => {
      if (err !== null || result === undefined) { cb(err, result); return }
      cb(null, [result[0].filter((c) => !/(^|\.)__\w+$/.test(c) && c !== 'constructor'), result[1]])
    })
  }
}

function unique (names: string[]): string[] {
  return [...new Set(names)]
}
