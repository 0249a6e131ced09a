/**
 * `isoTime(ms)`: the same text as `new Date(ms).toISOString()`, built from the UTC fields.
 * V8's own ISO formatting sets up its time zone cache, which reads ICU's zone data: the
 * first call maps ~0.6 MiB of the node executable that an idle node keeps resident for
 * nothing (every log line has a stamp). The UTC getters do not touch it.
 *
 *   isoTime(0)   // '1970-01-01T00:00:00.000Z'
 */

const pad = (n: number, width: number): string => String(n).padStart(width, '0')

export function isoTime (ms: number): string {
  const d = new Date(ms)
  if (Number.isNaN(d.getTime())) throw new RangeError('Invalid time value')
  const y = d.getUTCFullYear()
  // Years outside 0-9999 take a sign and six digits, as ECMAScript's expanded years do.
  const year = y >= 0 && y <= 9999 ? pad(y, 4) : `${y < 0 ? '-' : '+'}${pad(Math.abs(y), 6)}`
  return `${year}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds(), 3)}Z`
}
