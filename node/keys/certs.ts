/**
 * Certificate making with node-forge (reading is in read.ts, without forge). Key pairs come from node's crypto
 * (native, far faster than forge's pure-JS keygen); signatures are SHA-256.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import forge from 'node-forge'
import { OriginError, errorMessage } from '../errors'
import type { CertAndKey, Role } from './types'

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
function readForgeCertificate (pem: string): forge.pki.Certificate {
  try {
    return forge.pki.certificateFromPem(pem)
  } catch (err) {
    throw new OriginError('E_CERT_INVALID', `not a readable RSA certificate: ${errorMessage(err)}`)
  }
}
