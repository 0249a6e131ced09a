/**
 * keys: the cluster's certificates. One CA per cluster signs node and operator
 * certificates; a certificate's subject says who holds it (`CN=<name>`), which cluster
 * it belongs to (`O=<cluster>`) and what it may do (`OU=ca|node|operator`). Peers are
 * trusted by CA and role, never by hostname. Keys are RSA-2048, signatures SHA-256.
 * Files are never overwritten and private keys are written 0600.
 *
 * @example
 * ```ts
 * import { initKeys, issueOperator, loadIdentity } from './keys'
 *
 * await initKeys({ out: 'keys', cluster: 'demo' })       // ca.crt ca.key node.crt node.key
 * await issueOperator({ keys: 'keys', name: 'alice' })    // operators/alice.crt alice.key
 * const me = await loadIdentity({ keys: 'keys', as: 'alice' })
 * me.info // { role: 'operator', cluster: 'demo', name: 'alice', serial: '5F…', ... }
 * tls.connect({ ca: me.ca, cert: me.cert, key: me.key, checkServerIdentity: () => undefined, ... })
 * ```
 */
export type { Role, CertAndKey, CertInfo, Identity } from './types'
export { createCa, issueCertificate, type IssueOptions } from './certs'
export { parseCertificate, normalizeSerial } from './read'
export { certificateExpiry, EXPIRY_WARN_DAYS, type CertificateExpiry } from './expiry'
export { issueImageIdentity, holdKeys, NODE_KEY_FILES, type NodeKeyFile, type IssueImageIdentityOptions } from './image'
export {
  initKeys, issueOperator, loadIdentity,
  type InitKeysOptions, type IssueOperatorOptions, type LoadIdentityOptions
} from './files'
