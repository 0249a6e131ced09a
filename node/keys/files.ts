/**
 * The keys directory on disk: `ca.crt ca.key node.crt node.key operators/NAME.crt NAME.key`.
 * Nothing here ever overwrites a key or certificate: every target is checked before the
 * first write, and each write uses flag 'wx' so a racing writer fails instead of clobbering.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { OriginError, errorMessage } from '../errors'
import { heldKeyFile } from './image'
import { keyMatchesCert, parseCertificate, verifyIssuedBy } from './read'

/** node-forge is loaded only to make keys, never by a running node. */
const certs = (): typeof import('./certs') => require('./certs') as typeof import('./certs')
import type { Identity, Role } from './types'
import { CERT_NAME } from '../vocabulary'

/** Operator names become file names, so they are kept to a safe alphabet. */
const NAME_RE = CERT_NAME

interface Target { file: string, data: string, secret: boolean }

function checkName (name: string, flag: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new OriginError('E_ARGS', `${flag} "${String(name)}" must match ${NAME_RE.source} (letters, digits, '.', '_', '-')`, { name })
  }
}

async function exists (file: string): Promise<boolean> {
  try {
    await fs.lstat(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

/** Writes all targets, or none if any already exists (E_KEY_EXISTS naming it). Private keys get mode 0600. */
async function writeAllNew (targets: Target[]): Promise<string[]> {
  for (const t of targets) {
    if (await exists(t.file)) throw new OriginError('E_KEY_EXISTS', `refusing to overwrite ${t.file}`, { file: t.file })
  }
  for (const t of targets) {
    await fs.mkdir(path.dirname(t.file), { recursive: true })
    try {
      await fs.writeFile(t.file, t.data, { mode: t.secret ? 0o600 : 0o644, flag: 'wx' })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new OriginError('E_KEY_EXISTS', `refusing to overwrite ${t.file}`, { file: t.file })
      throw err
    }
  }
  return targets.map((t) => t.file)
}

/** A file's text, or E_KEY_MISSING naming its path. */
async function readKeyFile (file: string): Promise<string> {
  const held = heldKeyFile(file)
  if (held !== undefined) return held
  try {
    return await fs.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new OriginError('E_KEY_MISSING', `missing ${file}`, { file })
    throw new OriginError('E_KEY_MISSING', `cannot read ${file}: ${errorMessage(err)}`, { file })
  }
}

export interface InitKeysOptions {
  /** Directory to write into; created if needed. */
  out: string
  /** Cluster name, written as O in every certificate. */
  cluster: string
  /** CN of the first node certificate. @default 'node' */
  nodeName?: string
}

/** A new cluster: writes `OUT/ca.crt ca.key node.crt node.key`. */
export async function initKeys (opts: InitKeysOptions): Promise<{ files: string[] }> {
  const { out, cluster } = opts
  const nodeName = opts.nodeName ?? 'node'
  const targets = ['ca.crt', 'ca.key', 'node.crt', 'node.key'].map((f) => path.join(out, f))
  // Check before the (slow) key generation, and again inside writeAllNew.
  for (const file of targets) {
    if (await exists(file)) throw new OriginError('E_KEY_EXISTS', `refusing to overwrite ${file}`, { file })
  }
  const ca = certs().createCa(cluster)
  const node = certs().issueCertificate({ ca, role: 'node', cluster, name: nodeName })
  const files = await writeAllNew([
    { file: targets[0], data: ca.certPem, secret: false },
    { file: targets[1], data: ca.keyPem, secret: true },
    { file: targets[2], data: node.certPem, secret: false },
    { file: targets[3], data: node.keyPem, secret: true }
  ])
  return { files }
}

export interface IssueOperatorOptions {
  /** A keys directory holding ca.crt and ca.key. */
  keys: string
  /** Operator name: CN and file name. */
  name: string
}

/** A new operator: reads `KEYS/ca.crt ca.key`, writes `KEYS/operators/NAME.crt NAME.key`. */
export async function issueOperator (opts: IssueOperatorOptions): Promise<{ files: string[] }> {
  const { keys, name } = opts
  checkName(name, 'operator name')
  const crtFile = path.join(keys, 'operators', `${name}.crt`)
  const keyFile = path.join(keys, 'operators', `${name}.key`)
  for (const file of [crtFile, keyFile]) {
    if (await exists(file)) throw new OriginError('E_KEY_EXISTS', `refusing to overwrite ${file}`, { file })
  }
  const ca = { certPem: await readKeyFile(path.join(keys, 'ca.crt')), keyPem: await readKeyFile(path.join(keys, 'ca.key')) }
  const caInfo = parseCertificate(ca.certPem)
  if (caInfo.role !== 'ca') throw new OriginError('E_CERT_INVALID', `${path.join(keys, 'ca.crt')} is a ${caInfo.role} certificate, not a ca`, { file: path.join(keys, 'ca.crt') })
  const op = certs().issueCertificate({ ca, role: 'operator', cluster: caInfo.cluster, name })
  const files = await writeAllNew([
    { file: crtFile, data: op.certPem, secret: false },
    { file: keyFile, data: op.keyPem, secret: true }
  ])
  return { files }
}

export interface LoadIdentityOptions {
  keys: string
  /** Operator name: load `operators/NAME.crt/.key` instead of `node.crt/.key`. */
  as?: string
}

/**
 * The PEMs a node (or, with `as`, an operator) needs for mutual TLS, checked: the
 * certificate must carry the expected role, be issued by `ca.crt`, belong to the same
 * cluster, and match its key. Missing files are E_KEY_MISSING, bad ones E_CERT_INVALID.
 */
export async function loadIdentity (opts: LoadIdentityOptions): Promise<Identity> {
  const { keys, as } = opts
  if (as !== undefined) checkName(as, 'operator name')
  const caFile = path.join(keys, 'ca.crt')
  const certFile = as === undefined ? path.join(keys, 'node.crt') : path.join(keys, 'operators', `${as}.crt`)
  const keyFile = as === undefined ? path.join(keys, 'node.key') : path.join(keys, 'operators', `${as}.key`)
  const ca = await readKeyFile(caFile)
  const cert = await readKeyFile(certFile)
  const key = await readKeyFile(keyFile)
  const caInfo = parseCertificate(ca)
  if (caInfo.role !== 'ca') throw new OriginError('E_CERT_INVALID', `${caFile} is a ${caInfo.role} certificate, not a ca`, { file: caFile })
  const info = parseCertificate(cert)
  const expected: Role = as === undefined ? 'node' : 'operator'
  if (info.role !== expected) throw new OriginError('E_CERT_INVALID', `${certFile} has role ${info.role}, expected ${expected}`, { file: certFile, role: info.role })
  verifyIssuedBy(ca, cert, certFile)
  if (info.cluster !== caInfo.cluster) {
    throw new OriginError('E_CERT_INVALID', `${certFile} is for cluster "${info.cluster}", the CA is for "${caInfo.cluster}"`, { file: certFile })
  }
  let matches = false
  try {
    matches = keyMatchesCert(key, cert)
  } catch (err) {
    throw new OriginError('E_CERT_INVALID', `${keyFile} is not a readable RSA private key: ${errorMessage(err)}`, { file: keyFile })
  }
  if (!matches) throw new OriginError('E_CERT_INVALID', `${keyFile} does not belong to ${certFile}`, { file: keyFile })
  return { ca, cert, key, info }
}
