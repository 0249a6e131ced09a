/**
 * Who a memory transport says it is: the fields of its certificate, read with
 * node:crypto, checked against the CA as TLS would (signature and validity dates). Peers
 * then pass the same role, cluster and revocation checks as on the websocket transport
 * (node/transport/peer.ts `checkPeer`).
 */
import { X509Certificate } from 'node:crypto'
import { OriginError } from '../../node/errors'
import type { ClaimedPeer } from '../../node/transport/peer'

export interface Certified {
  claimed: Omit<ClaimedPeer, 'remote'>
  /** Validity, in ms since the epoch. */
  notBefore: number
  notAfter: number
  /** Why TLS would refuse this certificate, if it would; `kind` as in the refusal log. */
  refusal?: { message: string, kind: string }
}

function fieldOf (subject: string, name: string): string | undefined {
  for (const line of subject.split('\n')) {
    const i = line.indexOf('=')
    if (line.slice(0, i) === name) return line.slice(i + 1)
  }
  return undefined
}

/** Parsed and verified certificates by CA and certificate text: a cluster dials the same few often. */
const seen = new Map<string, Certified>()

/** Checks `identity.cert` against its CA; dates on real time, as TLS checks them on the host's clock, virtual or not. */
export function certified (identity: { ca: string, cert: string }, now = Date.now()): Certified {
  const key = identity.ca + identity.cert
  let c = seen.get(key)
  if (c === undefined) {
    c = verify(identity)
    if (seen.size > 1000) seen.clear()
    seen.set(key, c)
  }
  // The signature is checked once; the dates at every connection, as TLS does.
  const name = c.claimed.name
  if (c.refusal === undefined && c.notAfter < now) return { ...c, refusal: { message: `certificate "${name}" refused: certificate has expired`, kind: 'expired' } }
  if (c.refusal === undefined && c.notBefore > now) return { ...c, refusal: { message: `certificate "${name}" refused: certificate is not yet valid`, kind: 'not yet valid' } }
  return c
}

function verify (identity: { ca: string, cert: string }): Certified {
  const cert = new X509Certificate(identity.cert)
  const ca = new X509Certificate(identity.ca)
  const name = fieldOf(cert.subject, 'CN') ?? '?'
  const claimed = { role: fieldOf(cert.subject, 'OU'), cluster: fieldOf(cert.subject, 'O'), name, serial: cert.serialNumber }
  const dates = { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) }
  if (!cert.verify(ca.publicKey)) return { claimed, ...dates, refusal: { message: `certificate "${name}" refused: not signed by this cluster's CA`, kind: 'another CA' } }
  return { claimed, ...dates }
}

/** A refusal as the error peerOf would throw. */
export function refused (c: Certified, remote: string): OriginError {
  return new OriginError('E_CERT_INVALID', c.refusal?.message ?? 'refused', { remote, kind: c.refusal?.kind ?? 'refused' })
}
