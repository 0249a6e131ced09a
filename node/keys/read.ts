/**
 * Reading and checking certificates with node's own X.509 support, so a running node never
 * loads node-forge (which it needs only to make keys): parse origin's fields, verify the
 * issuer, match a key to its certificate.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { OriginError, errorMessage } from '../errors'
import { normalizeSerial } from '../vocabulary'
import { ROLES, type CertInfo, type Role } from './types'

/** Defined with the rest of the shared vocabulary; re-exported for the callers that import it from here. */
export { normalizeSerial }

/** PEM -> X509Certificate, or E_CERT_INVALID saying why. */
export function readCertificate (pem: string): X509Certificate {
  try {
    return new X509Certificate(pem)
  } catch (err) {
    throw new OriginError('E_CERT_INVALID', `not a readable certificate: ${errorMessage(err)}`)
  }
}

/** Subject `CN=a\nO=b\nOU=c` -> { CN: 'a', O: 'b', OU: 'c' } (first value of each). */
function subjectFields (subject: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of subject.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0 && !(line.slice(0, i) in out)) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

/** The origin fields of a certificate; E_CERT_INVALID naming what is missing. */
export function parseCertificate (pem: string): CertInfo {
  const cert = readCertificate(pem)
  const f = subjectFields(cert.subject)
  const role = f.OU === '' ? undefined : f.OU
  const cluster = f.O === '' ? undefined : f.O
  const name = f.CN === '' ? undefined : f.CN
  if (role === undefined || !(ROLES as readonly string[]).includes(role)) {
    throw new OriginError('E_CERT_INVALID', `certificate has no origin role: subject OU is ${role === undefined ? 'missing' : `"${role}"`}, expected one of ${ROLES.join(', ')}`, { ou: role })
  }
  if (cluster === undefined) throw new OriginError('E_CERT_INVALID', 'certificate has no cluster: subject O is missing', { missing: 'O' })
  if (name === undefined) throw new OriginError('E_CERT_INVALID', 'certificate has no name: subject CN is missing', { missing: 'CN' })
  return {
    role: role as Role,
    cluster,
    name,
    serial: normalizeSerial(cert.serialNumber),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo)
  }
}

/** Whether `certPem` was signed by `caPem`; E_CERT_INVALID naming the cert when not. */
export function verifyIssuedBy (caPem: string, certPem: string, label: string): void {
  const ca = readCertificate(caPem)
  const cert = readCertificate(certPem)
  if (!cert.checkIssued(ca)) throw new OriginError('E_CERT_INVALID', `${label} was not issued by this cluster's CA: its issuer is not the CA's subject`, { file: label })
  if (!cert.verify(ca.publicKey)) throw new OriginError('E_CERT_INVALID', `${label} was not issued by this cluster's CA: signature does not verify`, { file: label })
}

/** Whether the private key belongs to the certificate. */
export function keyMatchesCert (keyPem: string, certPem: string): boolean {
  try {
    return readCertificate(certPem).checkPrivateKey(createPrivateKey(keyPem))
  } catch {
    return false
  }
}
