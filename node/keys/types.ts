/**
 * The identity types other layers use: what a certificate says about its holder.
 * Layout (other code depends on it): subject `CN=<name>`, `O=<cluster>`, `OU=<role>`.
 */
import { CERT_ROLES, type CertRole } from '../vocabulary'

/** What a certificate may do: sign others (ca), serve and dial peers (node), or dial as a person (operator). */
export type Role = CertRole

export const ROLES: readonly Role[] = CERT_ROLES

/** A certificate and its private key, both PEM. */
export interface CertAndKey {
  certPem: string
  keyPem: string
}

/** The origin fields of a certificate. */
export interface CertInfo {
  role: Role
  /** The subject's O. */
  cluster: string
  /** The subject's CN. */
  name: string
  /** Serial as hex, already in `normalizeSerial` form (uppercase, as node's `tls` shows it). */
  serial: string
  notBefore: Date
  notAfter: Date
}

/** The files a node or operator needs to talk mutual TLS, PEM, plus what its certificate says. */
export interface Identity {
  /** The cluster CA certificate (trust anchor). */
  ca: string
  cert: string
  key: string
  info: CertInfo
}
