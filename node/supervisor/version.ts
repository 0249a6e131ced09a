/**
 * What a service's instances are made of, and so when they must be replaced: pure.
 *
 * A service's code is the part of the spec repo under its `paths` (by default its own
 * folder, `services/<name>/`); its version is a digest of that code and of every field of
 * its spec that reaches the process. Placement is left out on purpose: scaling, moving or
 * relabelling starts and stops instances, it never replaces the ones that stay. A change to
 * another service's files or to `cluster.json` changes no other version.
 */
import { createHash } from 'node:crypto'
import type { ServiceSpec } from '../desired/types'

/** The spec-repo paths a service's code is made of: files, or folders ending in `/`. */
export function servicePaths (name: string, svc: ServiceSpec): string[] {
  return svc.paths ?? [`services/${name}/`]
}

/** The files of `files` under `paths` (a folder path must end in `/`; a bare name matches a file or a folder). */
export function filesUnder<T> (paths: string[], files: Map<string, T>): Map<string, T> {
  const prefixes = paths.map((p) => p.replace(/^\.\//, ''))
  const within = (file: string): boolean => prefixes.some((p) => p === '' || p === '.' || file === p || file.startsWith(p.endsWith('/') ? p : p + '/'))
  return new Map([...files].filter(([path]) => within(path)))
}

/** A digest of code files and their modes: changes when a file, its name or its executable bit does. */
export function codeDigest (files: Map<string, Buffer>, modes: Map<string, number>): string {
  const h = createHash('sha256')
  for (const path of [...files.keys()].sort()) {
    const content = files.get(path) as Buffer
    h.update(`${path}\0${modes.get(path) ?? 0o644}\0${content.length}\0`).update(content)
  }
  return h.digest('hex').slice(0, 16)
}

/** The version of a service's instances: its code and what of its spec reaches the process. Same on every node. */
export function serviceVersion (svc: ServiceSpec, codeVersion: string): string {
  const { placement, ...rest } = svc
  return createHash('sha256').update(stableJson(rest)).update('\0').update(codeVersion).digest('hex').slice(0, 12)
}

/** JSON with object keys sorted, so that reordering fields in a spec file changes no version. */
export function stableJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`).join(',')}}`
  }
  return JSON.stringify(value)
}
