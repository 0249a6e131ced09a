/**
 * Certificate making and reading with node-forge. Key pairs come from node's crypto
 * (native, far faster than forge's pure-JS keygen); signatures are SHA-256.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import forge from 'node-forge'
import { OriginError, errorMessage } from '../errors'
import { ROLES, type CertAndKey, type CertInfo, type Role } from './types'

const YEAR_MS = 365 * 24 * 3600 * 1000
/** CA validity: long, since replacing it means re-issuing every certificate in the cluster. */
const CA_YEARS = 10
/** Leaf validity unless the caller gives `notAfter`. */
const LEAF_YEARS = 2
/** notBefore is backdated a little so a peer whose clock runs slow still accepts a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60 * 1000

/**
 * 16 random bytes as hex, top bit cleared so the DER INTEGER is positive. Bit 6 is set
 * as well: with a zero first byte forge would write a non-minimal INTEGER that OpenSSL
 * may refuse, and a fixed width keeps the forge and node views of the serial alike.
 */
function newSerial (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] & 0x7f) | 0x40
  return bytes.toString('hex')
}

function newKeyPair (): { publicKey: forge.pki.rsa.PublicKey, privateKey: forge.pki.rsa.PrivateKey, keyPem: string } {
  const pair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
  })
  return {
    publicKey: forge.pki.publicKeyFromPem(pair.publicKey),
    privateKey: forge.pki.privateKeyFromPem(pair.privateKey),
    keyPem: pair.privateKey
  }
}

function subject (role: Role, cluster: string, name: string): forge.pki.CertificateField[] {
  return [
    { shortName: 'CN', value: name },
    { shortName: 'O', value: cluster },
    { shortName: 'OU', value: role }
  ]
}

function requireText (value: string, what: string): void {
  if (typeof value !== 'string' || value.trim() === '') throw new OriginError('E_ARGS', `${what} must be a non-empty string`, { [what]: value })
}

/** A self-signed cluster CA: `CN=<cluster>-ca, O=<cluster>, OU=ca`, valid 10 years. */
export function createCa (cluster: string): CertAndKey {
  requireText(cluster, 'cluster')
  const { publicKey, privateKey, keyPem } = newKeyPair()
  const cert = forge.pki.createCertificate()
  cert.publicKey = publicKey
  cert.serialNumber = newSerial()
  const now = Date.now()
  cert.validity.notBefore = new Date(now - CLOCK_SKEW_MS)
  cert.validity.notAfter = new Date(now + CA_YEARS * YEAR_MS)
  const attrs = subject('ca', cluster, `${cluster}-ca`)
  cert.setSubject(attrs)
  cert.setIssuer(attrs)
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' }
  ])
  cert.sign(privateKey, forge.md.sha256.create())
  return { certPem: forge.pki.certificateToPem(cert), keyPem }
}

export interface IssueOptions {
  ca: CertAndKey
  role: 'node' | 'operator'
  cluster: string
  name: string
  /** @default now minus 5 minutes of clock skew */
  notBefore?: Date
  /** @default notBefore plus 2 years */
  notAfter?: Date
}

/**
 * A leaf certificate signed by `ca`. Nodes may serve and dial (serverAuth + clientAuth);
 * operators may only dial (clientAuth). Peers are verified by CA and role, not hostname,
 * so the SAN (localhost, 127.0.0.1) is only there for tools that insist on one.
 */
export function issueCertificate (opts: IssueOptions): CertAndKey {
  const { ca, role, cluster, name } = opts
  if (role !== 'node' && role !== 'operator') throw new OriginError('E_ARGS', `role must be node or operator, got "${String(role)}"`, { role })
  requireText(cluster, 'cluster')
  requireText(name, 'name')
  const caCert = readForgeCertificate(ca.certPem)
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem)
  const { publicKey, keyPem } = newKeyPair()
  const cert = forge.pki.createCertificate()
  cert.publicKey = publicKey
  cert.serialNumber = newSerial()
  const notBefore = opts.notBefore ?? new Date(Date.now() - CLOCK_SKEW_MS)
  cert.validity.notBefore = notBefore
  cert.validity.notAfter = opts.notAfter ?? new Date(notBefore.getTime() + LEAF_YEARS * YEAR_MS)
  cert.setSubject(subject(role, cluster, name))
  cert.setIssuer(caCert.subject.attributes)
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() }
  ]
  if (role === 'node') {
    extensions.push(
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }
    )
  } else {
    extensions.push(
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true }
    )
  }
  cert.setExtensions(extensions)
  cert.sign(caKey, forge.md.sha256.create())
  return { certPem: forge.pki.certificateToPem(cert), keyPem }
}

/** PEM -> forge certificate, or E_CERT_INVALID saying why. */
export function readForgeCertificate (pem: string): forge.pki.Certificate {
  try {
    return forge.pki.certificateFromPem(pem)
  } catch (err) {
    throw new OriginError('E_CERT_INVALID', `not a readable RSA certificate: ${errorMessage(err)}`)
  }
}

/** The origin fields of a certificate; E_CERT_INVALID naming what is missing. */
export function parseCertificate (pem: string): CertInfo {
  return certInfo(readForgeCertificate(pem))
}

export function certInfo (cert: forge.pki.Certificate): CertInfo {
  const field = (shortName: string): string | undefined => {
    const value: unknown = cert.subject.getField(shortName)?.value
    return typeof value === 'string' && value !== '' ? value : undefined
  }
  const role = field('OU')
  const cluster = field('O')
  const name = field('CN')
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
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter
  }
}

/**
 * A serial in the form node's `tls` `getPeerCertificate().serialNumber` shows it:
 * uppercase, leading zeros stripped, but whole bytes (OpenSSL's BN_bn2hex keeps a leading
 * zero nibble: serial 0x0A11 is "0A11", not "A11"). Separators such as ':' are ignored.
 */
export function normalizeSerial (hex: string): string {
  const digits = hex.replace(/[\s:]/g, '').toUpperCase()
  if (!/^[0-9A-F]*$/.test(digits)) throw new OriginError('E_CERT_INVALID', `serial is not hex: "${hex}"`, { serial: hex })
  const stripped = digits.replace(/^0+/, '')
  if (stripped === '') return '0'
  return stripped.length % 2 === 1 ? `0${stripped}` : stripped
}

/** Whether `certPem` was signed by `caPem`; E_CERT_INVALID naming the cert when not. */
export function verifyIssuedBy (caPem: string, certPem: string, label: string): void {
  const caCert = readForgeCertificate(caPem)
  const cert = readForgeCertificate(certPem)
  let ok = false
  let why = 'signature does not verify'
  try {
    ok = caCert.verify(cert)
  } catch (err) {
    why = errorMessage(err)
  }
  if (!ok) throw new OriginError('E_CERT_INVALID', `${label} was not issued by this cluster's CA: ${why}`, { file: label })
}

/** Whether the private key belongs to the certificate (same RSA modulus). */
export function keyMatchesCert (keyPem: string, certPem: string): boolean {
  const key = forge.pki.privateKeyFromPem(keyPem)
  const pub = readForgeCertificate(certPem).publicKey as forge.pki.rsa.PublicKey
  return key.n.equals(pub.n) && key.e.equals(pub.e)
}
