/**
 * Argument parsing shared by the subcommands: node's own `util.parseArgs`, with errors
 * turned into E_ARGS so `main` prints what is wrong and exits 2.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { OriginError, errorMessage } from '../errors'

export interface Command {
  /** Full `--help` text. */
  usage: string
  run (argv: string[]): Promise<number>
}

type Options = NonNullable<ParseArgsConfig['options']>

export function parse<O extends Options> (argv: string[], options: O, usage: string, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true })
  } catch (err) {
    throw new OriginError('E_ARGS', errorMessage(err), { usage })
  }
}

/** The value of a required string option, or E_ARGS naming it. */
export function required (values: Record<string, unknown>, name: string, usage: string): string {
  const v = values[name]
  if (typeof v !== 'string' || v === '') throw new OriginError('E_ARGS', `missing --${name}`, { usage })
  return v
}

/** `host:port` -> parts, or E_ARGS naming the flag. */
export function hostPort (value: string, flag: string): { host: string, port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(value)
  const port = m ? Number(m[2]) : NaN
  if (!m || port < 0 || port > 65535) throw new OriginError('E_ARGS', `--${flag} must be HOST:PORT, got "${value}"`)
  return { host: m[1].replace(/^\[|\]$/g, ''), port }
}
