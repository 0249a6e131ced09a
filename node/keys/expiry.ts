/**
 * When a certificate expires, and whether that is soon enough to say so. Pure: the clock
 * is an argument. A node's certificate comes from its image (`origin build` issues one per
 * build), so an expiring certificate means "build a new image and roll it out": the
 * warning starts weeks ahead, which is how long a rollout may take.
 *
 * @example
 *   const e = certificateExpiry(identity.info, Date.now())
 *   if (e.level !== 'ok') log.warn(e.message)
 */
import type { CertInfo } from './types'
import { isoTime } from '../clock'

const DAY_MS = 24 * 3600 * 1000

/** How long before expiry a node starts warning. @default 30 days */
export const EXPIRY_WARN_DAYS = 30

export interface CertificateExpiry {
  serial: string
  /** ISO 8601. */
  notAfter: string
  /** Whole days left, rounded down; negative once expired. */
  daysLeft: number
  /** `ok`, `soon` (within the warning window) or `expired`. */
  level: 'ok' | 'soon' | 'expired'
  /** One line a person can read, e.g. `certificate 5F0A… expires in 12 days (2027-01-03)`. */
  message: string
}

/** The expiry of `cert` as of `now` (ms since the epoch). */
export function certificateExpiry (cert: Pick<CertInfo, 'serial' | 'notAfter'>, now: number, warnDays = EXPIRY_WARN_DAYS): CertificateExpiry {
  const left = cert.notAfter.getTime() - now
  const daysLeft = Math.floor(left / DAY_MS)
  const date = isoTime(cert.notAfter.getTime()).slice(0, 10)
  const level = left <= 0 ? 'expired' : daysLeft < warnDays ? 'soon' : 'ok'
  const what = `certificate ${cert.serial}`
  const message = level === 'expired'
    ? `${what} expired on ${date}: peers refuse it; build a new image (origin build), roll it out, then revoke serial ${cert.serial}`
    : level === 'soon'
      ? `${what} expires in ${daysLeft === 0 ? 'less than a day' : `${daysLeft} day${daysLeft === 1 ? '' : 's'}`} (${date}): build a new image (origin build), roll it out, then revoke serial ${cert.serial}`
      : `${what} expires on ${date} (${daysLeft} days)`
  return { serial: cert.serial, notAfter: isoTime(cert.notAfter.getTime()), daysLeft, level, message }
}
