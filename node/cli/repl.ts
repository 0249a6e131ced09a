/**
 * `origin repl`: a TypeScript REPL against a live cluster, or one expression with -e.
 */
import { connectCluster } from '../../repl/client'
import { evaluate } from '../../repl/evaluate'
import { startSession } from '../../repl/session'
import { openInEditor } from '../../repl/open'
import { OpsLoader } from '../../repl/ops'
import { errorMessage } from '../errors'
import { hostPort, parse, required, type Command } from './args'

const usage = `usage: origin repl --keys KEYS --as NAME --connect HOST:PORT [-e EXPR]

Opens a TypeScript REPL (top-level await) connected to any node of the cluster, with
\`cluster\` in scope:
  await cluster.nodes()    the member table
  await cluster.hubs()     the hub set and its policy
  await cluster.spec()     the spec applied, per node, and the last rejected commit
  await cluster.sync()     fetch the spec repo now
  await cluster.services() every service, its instances, status, restarts, uptime; the phase
  await cluster.where('web')                 where one service runs
  await cluster.logs('node-1', 'web', { lines: 100, follow: true })
                           download a log to ./logs/<node>/<service>.log; open(path) opens it
  await cluster.forget('node-x')  a dead node is gone for good (it becomes left)
  await cluster.ping()     which node answered, round trip in ms
  await ops.aliveCount(cluster)   helpers exported by the spec repo's ops/*.ts (reloaded when it changes)

  --keys KEYS         keys directory with ca.crt and operators/NAME.crt, NAME.key
  --as NAME           operator certificate to use
  --connect HOST:PORT any node of the cluster
  -e, --eval EXPR     evaluate EXPR, print the result as JSON, exit 0 (1 on error)`

export const replCommand: Command = {
  usage,
  async run (argv) {
    const { values } = parse(argv, {
      keys: { type: 'string' },
      as: { type: 'string' },
      connect: { type: 'string' },
      eval: { type: 'string', short: 'e' }
    }, usage)
    const keys = required(values, 'keys', usage)
    const as = required(values, 'as', usage)
    const address = required(values, 'connect', usage)
    hostPort(address, 'connect')
    const cluster = await connectCluster({ keys, as, address })
    try {
      if (values.eval !== undefined) {
        try {
          const loader = new OpsLoader(cluster)
          await loader.refresh()
          const result = await evaluate(values.eval, { cluster, open: openInEditor, ops: loader.ops })
          process.stdout.write((result === undefined ? 'null' : JSON.stringify(result, null, 2)) + '\n')
          return 0
        } catch (err) {
          process.stderr.write(`${errorMessage(err)}\n`)
          return 1
        }
      }
      await startSession(cluster, { banner: `connected to ${address} as ${as}; try: await cluster.nodes()` })
      return 0
    } finally {
      cluster.close()
    }
  }
}

