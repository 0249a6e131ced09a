/**
 * A rejection's problems as data and as lines. The data (file, line, column, JSON path,
 * message) is what crosses the wire and what is remembered; the line is what logs and the
 * journal show. A problem that is no file's (a bad signature, a commit over its size) has
 * file '' and its line is its message as is.
 */
import { formatSpecError } from './load'
import type { SpecError } from './types'

/** A problem that belongs to no file: its message as is. */
export function noFile (message: string): SpecError {
  return { file: '', message }
}

/** The line a person reads: `file:line:column:path: message`, or the message alone for no file. */
export function problemLine (p: SpecError): string {
  return p.file === '' ? p.message : formatSpecError(p)
}

// A spec file's path has an extension and no spaces or colons; a JSON pointer starts with '/'.
const LINE = /^(?<file>[^\s:]+\.[A-Za-z0-9]+)(?::(?<line>\d+)(?::(?<column>\d+))?)?(?::(?<path>\/[^\s]*?))?: (?<message>.+)$/s

/**
 * A problem back from its line, for what was remembered as lines only (rejected.json from
 * before problems were kept). Only a parse that formats back to the very same line counts:
 * anything else (a signature's or a size's message, a message that merely looks like a
 * path) stays a no-file problem, so the line a person reads never changes.
 */
export function problemFromLine (text: string): SpecError {
  const m = LINE.exec(text)?.groups
  if (m === undefined) return noFile(text)
  const p: SpecError = { file: m.file, message: m.message }
  if (m.line !== undefined) p.line = Number(m.line)
  if (m.column !== undefined) p.column = Number(m.column)
  if (m.path !== undefined) p.path = m.path
  return formatSpecError(p) === text ? p : noFile(text)
}
