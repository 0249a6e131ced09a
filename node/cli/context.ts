/**
 * Contexts, so `--keys --as --connect` need not be repeated: saved under a name in the
 * user's config dir (`$XDG_CONFIG_HOME/origin/contexts.json`), picked with `--context
 * NAME`. Where each value comes from, first found wins: the flag, the context named by
 * --context, then ORIGIN_KEYS / ORIGIN_AS / ORIGIN_CONNECT.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import { configDir } from '../../repl/history'
import { hostPort, parse, type Command } from './args'
import { listInWords, requireAll } from './flags'

export interface Context { keys: string, as: string, connect: string }

export const contextsPath = (env: NodeJS.ProcessEnv = process.env): string => join(configDir(env), 'contexts.json')

export async function readContexts (env: NodeJS.ProcessEnv = process.env): Promise<Record<string, Context>> {
  const path = contextsPath(env)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw err
  }
  try {
    return JSON.parse(text) as Record<string, Context>
  } catch (err) {
    throw new OriginError('E_CONFIG_INVALID', `${path}: ${errorMessage(err)}; fix it or remove it`, { path })
  }
}

const ENV = { keys: 'ORIGIN_KEYS', as: 'ORIGIN_AS', connect: 'ORIGIN_CONNECT' } as const

/** keys, as and connect from the flags, the --context, the environment; every missing one named at once. */
export async function resolveConnection (values: { keys?: string, as?: string, connect?: string, context?: string }, usage: string, env: NodeJS.ProcessEnv = process.env): Promise<Context> {
  let saved: Partial<Context> = {}
  if (values.context !== undefined) {
    const all = await readContexts(env)
    const c = all[values.context]
    if (c === undefined) {
      const names = Object.keys(all)
      throw new OriginError('E_ARGS', `no context "${values.context}" (${names.length === 0 ? "none saved yet: 'origin context save NAME --keys K --as A --connect H:P'" : `saved: ${names.join(', ')}`})`, { usage })
    }
    saved = c
  }
  const pick = (k: keyof Context): string | undefined => [values[k], saved[k], env[ENV[k]]].find((v) => v !== undefined && v !== '')
  const found = { keys: pick('keys'), as: pick('as'), connect: pick('connect') }
  requireAll(found, ['keys', 'as', 'connect'], usage, '(give the flags, --context NAME, or ORIGIN_KEYS, ORIGIN_AS, ORIGIN_CONNECT)')
  hostPort(found.connect!, 'connect')
  return found as Context
}

const usage = `usage:
  origin context save NAME [--keys KEYS] [--as NAME] [--connect HOST:PORT]
      Save where and as whom to connect under NAME (values not given as flags come from
      ORIGIN_KEYS, ORIGIN_AS, ORIGIN_CONNECT); then 'origin repl --context NAME'.
  origin context list
      The saved contexts.
  origin context remove NAME

Contexts are kept in $XDG_CONFIG_HOME/origin/contexts.json (default ~/.config/origin).`

async function save (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { keys: { type: 'string' }, as: { type: 'string' }, connect: { type: 'string' } }, usage, true)
  const name = positionals[0]
  const given = { keys: values.keys ?? process.env.ORIGIN_KEYS, as: values.as ?? process.env.ORIGIN_AS, connect: values.connect ?? process.env.ORIGIN_CONNECT }
  const missing = [...(name === undefined ? ['NAME'] : []), ...(['keys', 'as', 'connect'] as const).filter((k) => given[k] === undefined || given[k] === '').map((k) => `--${k}`)]
  if (missing.length > 0) throw new OriginError('E_ARGS', `missing ${listInWords(missing)}`, { usage })
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name!)) throw new OriginError('E_ARGS', `a context name is letters, digits, ".", "_" and "-"; got "${name!}"`, { usage })
  hostPort(given.connect!, 'connect')
  const all = await readContexts()
  all[name!] = { keys: resolve(given.keys!), as: given.as!, connect: given.connect! }
  await writeContexts(all)
  console.log(`saved context ${name!}: --keys ${all[name!]!.keys} --as ${given.as!} --connect ${given.connect!}\nuse it with: origin repl --context ${name!}`)
  return 0
}

async function writeContexts (all: Record<string, Context>): Promise<void> {
  const path = contextsPath()
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFile(path, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 })
}

export const contextCommand: Command = {
  usage,
  async run (argv) {
    const [sub, ...rest] = argv
    if (sub === 'save') return await save(rest)
    if (sub === 'list') {
      parse(rest, {}, usage)
      const all = await readContexts()
      if (Object.keys(all).length === 0) console.log("no contexts saved; 'origin context save NAME --keys K --as A --connect H:P'")
      for (const [name, c] of Object.entries(all)) console.log(`${name}  --keys ${c.keys} --as ${c.as} --connect ${c.connect}`)
      return 0
    }
    if (sub === 'remove') {
      const { positionals } = parse(rest, {}, usage, true)
      const all = await readContexts()
      if (positionals[0] === undefined || all[positionals[0]] === undefined) throw new OriginError('E_ARGS', positionals[0] === undefined ? 'missing NAME' : `no context "${positionals[0]}"`, { usage })
      delete all[positionals[0]]
      await writeContexts(all)
      console.log(`removed context ${positionals[0]}`)
      return 0
    }
    throw new OriginError('E_ARGS', sub === undefined ? 'missing subcommand (save, list or remove)' : `unknown subcommand "${sub}"`, { usage })
  }
}
