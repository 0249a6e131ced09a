/**
 * Required flags, checked all at once: a usage error names every missing flag in one
 * message (`missing --keys, --as and --connect`), not one per attempt.
 */
import { OriginError } from '../errors'

/** `['a', 'b', 'c']` -> `a, b and c`. */
export function listInWords (items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]!}`
}

/** Throws E_ARGS naming every flag of `names` with no value in `values`; `how` says where else values may come from. */
export function requireAll (values: Record<string, unknown>, names: string[], usage: string, how = ''): void {
  const missing = names.filter((n) => typeof values[n] !== 'string' || values[n] === '')
  if (missing.length > 0) throw new OriginError('E_ARGS', `missing ${listInWords(missing.map((n) => `--${n}`))}${how === '' ? '' : ` ${how}`}`, { usage, missing })
}
