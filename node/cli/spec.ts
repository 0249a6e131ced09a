/**
 * `origin spec check DIR`: validate a spec repo's working directory exactly as a node
 * does (node/desired: the same reading, schema, TypeScript evaluated in a separate process
 * under the same limits), print each error as nodes do, with file and line, and exit 0
 * (valid) or 1 (not): for editors, pre-commit hooks and CI.
 */
import { relative, resolve } from 'node:path'
import { OriginError } from '../errors'
import { formatSpecError, loadSpec, readSpecDir, type SpecError } from '../desired/load'
import { parse, type Command } from './args'

const usage = `usage: origin spec check DIR [--cluster NAME] [--json]

Validates the spec repo in DIR (its working tree; .git and node_modules are left out) as
every node would before applying it: cluster.json/ts and services/*.json/ts against the
schema, TypeScript specs run in a separate process under the nodes' limits. Each error is
printed as nodes print it, with the line and column added: "FILE:LINE:COLUMN: message",
or "FILE:LINE:COLUMN:/json/path: message" for a schema error, relative to here. Commit
signatures are checked by nodes on the commit, not here.

  --cluster NAME   also check that the spec is for this cluster, as a node of NAME would
  --json           print { ok, errors, services } as JSON

Exit status: 0 valid, 1 invalid, 2 wrong arguments.`

async function check (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { cluster: { type: 'string' }, json: { type: 'boolean' } }, usage, true)
  if (positionals.length === 0) throw new OriginError('E_ARGS', 'missing DIR (the spec repo to check)', { usage })
  if (positionals.length > 1) throw new OriginError('E_ARGS', `unexpected argument "${positionals[1]!}"`, { usage })
  const dir = resolve(positionals[0]!)
  const rel = relative(process.cwd(), dir)
  const shown = rel.startsWith('..') ? dir : rel
  const prefix = shown === '' ? '' : `${shown}/`
  let errors: string[]
  let services: string[] = []
  let cluster = ''
  try {
    const files = await readSpecDir(dir)
    const loaded = await loadSpec(files)
    errors = loaded.ok ? [] : loaded.errors.map((e) => prefix + formatSpecError(withLine(e, files.get(e.file))))
    if (loaded.ok) {
      services = Object.keys(loaded.spec.services).sort()
      cluster = loaded.spec.cluster.name
      if (values.cluster !== undefined && cluster !== values.cluster) errors.push(`${prefix}cluster.json: name "${cluster}" is not this cluster ("${values.cluster}")`)
    }
  } catch (err) {
    if (!(err instanceof OriginError) || err.code !== 'E_SPEC_INVALID') throw err
    errors = [err.message]
  }
  if (values.json === true) {
    process.stdout.write(JSON.stringify({ ok: errors.length === 0, errors, cluster, services }, null, 2) + '\n')
  } else if (errors.length > 0) {
    for (const e of errors) process.stderr.write(e + '\n')
    process.stderr.write(`${errors.length} error${errors.length === 1 ? '' : 's'}: a node would reject this spec\n`)
  } else {
    process.stdout.write(`ok: ${shown === '' ? '.' : shown} is a valid spec for cluster "${cluster}": ${services.length} service${services.length === 1 ? '' : 's'}${services.length > 0 ? ` (${services.join(', ')})` : ''}\n`)
  }
  return errors.length === 0 ? 0 : 1
}

/** A schema error (a JSON pointer) with the line and column of the value it names, where the source shows it. */
function withLine (e: SpecError, content: Buffer | undefined): SpecError {
  if (e.line !== undefined || e.path === undefined || content === undefined || !/\.(json|ts)$/.test(e.file)) return e
  const at = (require('./spec-lines') as typeof import('./spec-lines')).locate(e.file, content.toString('utf8'), e.path)
  return at === undefined ? e : { ...e, ...at }
}

export const specCommand: Command = {
  usage,
  async run (argv) {
    const [sub, ...rest] = argv
    if (sub === 'check') return await check(rest)
    throw new OriginError('E_ARGS', sub === undefined ? 'missing subcommand (check)' : `unknown subcommand "${sub}"`, { usage })
  }
}
