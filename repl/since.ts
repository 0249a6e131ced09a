/**
 * `since` as an operator writes it: `'10m'`, `'2h'`, `'1d'`, `'30s'` (that long ago), a
 * Date, or any date string (`'2024-05-01'`, `'2024-05-01 14:00'`, an ISO string), as the
 * ISO string nodes take.
 *
 * @example
 *   sinceToIso('10m')          // 10 minutes ago
 *   sinceToIso('2024-05-01')   // '2024-05-01T00:00:00.000Z'
 */
import { OriginError } from '../node/errors'

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

export function sinceToIso (since: Date | string | number, now = Date.now()): string {
  let at: number
  if (since instanceof Date) at = since.getTime()
  else if (typeof since === 'number') at = since
  else {
    const ago = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$/.exec(since)
    at = ago !== null ? now - Number(ago[1]) * UNIT_MS[ago[2]!]! : Date.parse(since)
  }
  if (!Number.isFinite(at)) {
    throw new OriginError('E_ARGS', `since: cannot read ${JSON.stringify(since)} as a time; give '10m', '2h', '1d', a Date or a date like '2024-05-01 14:00'`, { since: String(since) })
  }
  return new Date(at).toISOString()
}
