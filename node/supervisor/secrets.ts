/**
 * Secrets: env values a service takes from files of the node image's `secrets/` folder
 * instead of from git (`"env": { "PASSWORD": { "secret": "redis-password" } }`). Nodes
 * tell the cluster which secret names their image carries (never the values), so the
 * scheduler places a service only where its secrets are.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import type { ServiceSpec } from '../desired/types'

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** The secret names in `dir` (regular files with a valid name); none when there is no such folder. */
export async function listSecrets (dir: string | undefined): Promise<string[]> {
  if (dir === undefined) return []
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  return entries.filter((e) => e.isFile() && NAME.test(e.name)).map((e) => e.name).sort()
}

/** The service's env with every secret read from `dir`; a missing one is an error naming it. */
export async function resolveEnv (svc: ServiceSpec, dir: string | undefined): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(svc.run.env ?? {})) {
    if (typeof value === 'string') { out[name] = value; continue }
    if (dir === undefined) throw new OriginError('E_NOT_FOUND', `secret "${value.secret}" (for ${name}): this node's image has no secrets folder`, { secret: value.secret })
    try {
      // One trailing newline is what editors and `echo` add; the value is what precedes it.
      out[name] = (await readFile(join(dir, value.secret), 'utf8')).replace(/\r?\n$/, '')
    } catch (err) {
      throw new OriginError('E_NOT_FOUND', `secret "${value.secret}" (for ${name}) cannot be read from ${dir}: ${errorMessage(err)}`, { secret: value.secret })
    }
  }
  return out
}

/** `env` without the variables whose values come from secrets. */
export function withoutSecrets (env: Record<string, string>, svc: ServiceSpec): Record<string, string> {
  const secret = new Set(Object.entries(svc.run.env ?? {}).filter(([, v]) => typeof v !== 'string').map(([k]) => k))
  return Object.fromEntries(Object.entries(env).filter(([k]) => !secret.has(k)))
}
