/**
 * `origin keys`: make a cluster's CA and first node certificate, and issue operator
 * certificates. Thin: parse arguments, call the keys layer, print what was written.
 */
import { OriginError } from '../errors'
import { initKeys, issueOperator } from '../keys'
import { parse, required, type Command } from './args'
import { requireAll } from './flags'

const usage = `usage:
  origin keys init --out KEYS --cluster NAME [--node-name NODE]
      Create a new cluster CA and a first node certificate: KEYS/ca.crt ca.key node.crt node.key.
  origin keys operator NAME --keys KEYS
      Issue an operator (REPL user) certificate signed by KEYS/ca.key: KEYS/operators/NAME.crt NAME.key.

Existing files are never overwritten; private keys are written with mode 0600.
Put ca.crt, node.crt and node.key into a node image; keep ca.key off nodes and out of git.`

async function init (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    out: { type: 'string' },
    cluster: { type: 'string' },
    'node-name': { type: 'string' }
  }, usage)
  requireAll(values, ['out', 'cluster'], usage)
  const out = values.out as string
  const cluster = values.cluster as string
  const nodeName = values['node-name']
  if (nodeName === '') throw new OriginError('E_ARGS', '--node-name must not be empty', { usage })
  const { files } = await initKeys({ out, cluster, nodeName })
  printWritten(files)
  return 0
}

async function operator (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { keys: { type: 'string' } }, usage, true)
  if (positionals.length === 0) throw new OriginError('E_ARGS', 'missing operator NAME', { usage })
  if (positionals.length > 1) throw new OriginError('E_ARGS', `unexpected argument "${positionals[1]}"`, { usage })
  const keys = required(values, 'keys', usage)
  const { files } = await issueOperator({ keys, name: positionals[0] })
  printWritten(files)
  return 0
}

function printWritten (files: string[]): void {
  for (const file of files) console.log(`wrote ${file}`)
}

export const keysCommand: Command = {
  usage,
  async run (argv: string[]): Promise<number> {
    const [sub, ...rest] = argv
    if (sub === 'init') return await init(rest)
    if (sub === 'operator') return await operator(rest)
    throw new OriginError('E_ARGS', sub === undefined ? 'missing subcommand (init or operator)' : `unknown subcommand "${sub}"`, { usage })
  }
}
