/**
 * How a spec rejection crosses the wire: as an OriginError (E_SPEC_INVALID) whose data
 * holds the version and each problem (file, line, column, JSON path, message), sent with
 * toJSON and rebuilt with fromJSON, so the REPL gets the problems as data, not only as text.
 */
import { OriginError } from '../errors'
import type { SpecError } from '../desired/contract'

export interface RejectionData { version: string, problems: SpecError[] }

/** A rejection as an error; a rejection from a node that sends no problems gets one per line of text. */
export function specRejectedError (r: { version: string, errors: string[], problems?: SpecError[] }): OriginError {
  const problems = r.problems ?? r.errors.map((message) => ({ file: '', message }))
  const first = r.errors[0] ?? problems[0]?.message ?? 'rejected'
  const more = r.errors.length > 1 ? ` (and ${r.errors.length - 1} more)` : ''
  const version = r.version.startsWith('dir:') ? r.version : r.version.slice(0, 12)
  const data: RejectionData = { version: r.version, problems }
  return new OriginError('E_SPEC_INVALID', `spec ${version} rejected: ${first}${more}`, { ...data })
}

/** The problems an E_SPEC_INVALID error carries, checked (it came over the wire). */
export function problemsOf (err: OriginError): SpecError[] {
  const list = err.code === 'E_SPEC_INVALID' ? err.data.problems : undefined
  if (!Array.isArray(list)) return []
  return list.filter((p): p is SpecError => typeof p === 'object' && p !== null && typeof p.file === 'string' && typeof p.message === 'string')
}
