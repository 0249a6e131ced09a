/**
 * Who is on the other end: read from the certificate TLS already verified against the
 * cluster CA, then checked for what origin needs (a known role, this cluster, not revoked).
 */
import type { PeerCertificate, TLSSocket } from 'node:tls'
import { OriginError } from '../errors'
import { normalizeSerial } from '../keys/read'
import type { Peer, PeerRole } from './types'

const roles: readonly string[] = ['node', 'operator']

/** How a refusal is counted in the refusal log's summary, by OpenSSL verification code. */
const verifyKinds: Record<string, string> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not yet valid',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'another CA',
  UNABLE_TO_GET_ISSUER_CERT: 'another CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'another CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'another CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'another CA',
  CERT_SIGNATURE_FAILURE: 'bad signature'
}

/** OpenSSL verification codes in words. */
const verifyErrors: Record<string, string> = {
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "not signed by this cluster's CA",
  UNABLE_TO_GET_ISSUER_CERT: "not signed by this cluster's CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "not signed by this cluster's CA",
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed, not signed by this cluster's CA",
  SELF_SIGNED_CERT_IN_CHAIN: "signed by another CA, not this cluster's",
  CERT_SIGNATURE_FAILURE: 'signature does not verify'
}

function field (subject: PeerCertificate['subject'] | undefined, name: 'CN' | 'O' | 'OU'): string | undefined {
  const v = (subject as unknown as Record<string, unknown> | undefined)?.[name]
  return typeof v === 'string' ? v : undefined
}

export function remoteOf (socket: TLSSocket): string {
  const host = socket.remoteAddress ?? '?'
  return `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? '?'}`
}

/**
 * The verified peer on `socket`, or an OriginError saying why it may not talk to us; its
 * `data.kind` names the kind of refusal in a few words (no certificate, another CA, ...).
 */
export function peerOf (socket: TLSSocket, cluster: string, revoked: ReadonlySet<string>): Peer {
  const remote = remoteOf(socket)
  const cert = socket.getPeerCertificate()
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) {
    throw new OriginError('E_CERT_INVALID', 'no client certificate (origin requires mutual TLS)', { remote, kind: 'no certificate' })
  }
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? 'unknown')
    throw new OriginError('E_CERT_INVALID', `certificate "${field(cert.subject, 'CN') ?? '?'}" refused: ${verifyErrors[code] ?? code}`, { remote, reason: code, kind: verifyKinds[code] ?? 'certificate refused' })
  }
  return checkPeer({ role: field(cert.subject, 'OU'), cluster: field(cert.subject, 'O'), name: field(cert.subject, 'CN') ?? '?', serial: cert.serialNumber ?? '', remote }, cluster, revoked)
}

/** What a certificate says, before origin's checks. */
export interface ClaimedPeer { role: string | undefined, cluster: string | undefined, name: string, serial: string, remote: string }

/**
 * The checks every transport makes on a verified certificate's fields: a known role, this
 * cluster, not revoked. An OriginError with `data.kind` otherwise, as `peerOf`.
 */
export function checkPeer (claimed: ClaimedPeer, cluster: string, revoked: ReadonlySet<string>): Peer {
  const { role, name, remote } = claimed
  const certCluster = claimed.cluster
  const serial = normalizeSerial(claimed.serial)
  if (role === undefined || !roles.includes(role)) {
    throw new OriginError('E_FORBIDDEN_ROLE', `certificate "${name}" has role ${role ?? '(none)'}; only node and operator certificates may connect`, { remote, role, kind: 'wrong role' })
  }
  if (certCluster !== cluster) {
    throw new OriginError('E_CERT_INVALID', `certificate "${name}" is for cluster ${certCluster ?? '(none)'}, this is cluster ${cluster}`, { remote, cluster: certCluster, kind: 'another cluster' })
  }
  if (revoked.has(serial)) {
    throw new OriginError('E_CERT_INVALID', `certificate "${name}" (serial ${serial}) is revoked`, { remote, serial, kind: 'revoked' })
  }
  return { role: role as PeerRole, cluster, name, serial, remote }
}
