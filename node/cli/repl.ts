/**
 * `origin repl`: a TypeScript REPL against a live cluster, or one expression with -e.
 * Where to connect and as whom come from the flags, a saved --context, or ORIGIN_KEYS,
 * ORIGIN_AS and ORIGIN_CONNECT (context.ts).
 */
import { connectCluster } from '../../repl/client'
import { errorLine } from '../../repl/errors'
import { evaluate } from '../../repl/evaluate'
import { startSession } from '../../repl/session'
import { openInEditor } from '../../repl/open'
import { OpsLoader } from '../../repl/ops'
import { parse, type Command } from './args'
import { resolveConnection } from './context'

const usage = `usage: origin repl --keys KEYS --as NAME --connect HOST:PORT [-e EXPR]
       origin repl --context NAME [-e EXPR]

Opens a TypeScript REPL (top-level await) connected to any node of the cluster, with
\`cluster\`, \`ops\` and \`open\` in scope (.help lists everything, Tab completes):
  await cluster.nodes()    the member table
  await cluster.hubs()     the hub set and its policy
  await cluster.spec()     the spec applied, per node, and the last rejected commit
  await cluster.sync()     fetch the spec repo now
  await cluster.services() every service, its instances, status, restarts, uptime; the phase
  await cluster.where('web')                 where one service runs
  await cluster.stats()    CPU, memory, load, disk, event-loop delay, mesh per node; CPU, memory per instance
  await cluster.stats({ watch: 2000 })       the same, refreshed in place until Ctrl-C
  await cluster.logs('node-1', 'web', { lines: 100, since: '10m', follow: true })
                           download a log to ./logs/<node>/<service>.log; open(path) opens it
  await cluster.logs('web')                  every instance of web, to ./logs/web/<node>/<instance>.log
  await cluster.forget('node-x')  a dead node is gone for good (it becomes left)
  await cluster.ping()     which node answered, round trip in ms
  await ops.aliveCount(cluster)   helpers exported by the spec repo's ops/*.ts (reloaded when it changes)

  --keys KEYS         keys directory with ca.crt and operators/NAME.crt, NAME.key (or ORIGIN_KEYS)
  --as NAME           operator certificate to use (or ORIGIN_AS)
  --connect HOST:PORT any node of the cluster (or ORIGIN_CONNECT); if it goes away the
                      session goes on with another member
  --context NAME      keys, operator and node saved with 'origin context save NAME'
  -e, --eval EXPR     evaluate EXPR, print the result as JSON, exit 0 (1 on error)

History is kept in $XDG_CONFIG_HOME/origin/repl_history (default ~/.config/origin).`

export const replCommand: Command = {
  usage,
  async run (argv) {
    const { values } = parse(argv, {
      keys: { type: 'string' },
      as: { type: 'string' },
      connect: { type: 'string' },
      context: { type: 'string' },
      eval: { type: 'string', short: 'e' }
    }, usage)
    const { keys, as, connect: address } = await resolveConnection(values, usage)
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
          process.stderr.write(`${errorLine(err)}\n`)
          return 1
        }
      }
      await startSession(cluster, { banner: `connected to ${address} as ${as}; .help lists what you can do, e.g. await cluster.nodes()` })
      return 0
    } finally {
      cluster.close()
    }
  }
}
