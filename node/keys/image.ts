/**
 * Keys for node images. `issueImageIdentity` gives each image build its own node
 * certificate, signed by the cluster CA, so one leaked image is revoked by its serial
 * (`revokedSerials` in the spec) without touching any other. The CA key is read to sign
 * and never leaves this function; nothing is written to the keys directory.
 *
 * `holdKeys` serves a node's keys from memory (an `origin-node` executable carries them
 * inside): `loadIdentity({ keys: label })` then reads them without touching the disk.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { isoTime } from '../clock'
import { OriginError, errorMessage } from '../errors'
import { keyMatchesCert, parseCertificate } from './read'
import type { Identity } from './types'

/** The files a node's keys directory holds, and nothing else an image may carry. */
export const NODE_KEY_FILES = ['ca.crt', 'node.crt', 'node.key'] as const
export type NodeKeyFile = typeof NODE_KEY_FILES[number]

const DAY_MS = 24 * 3600 * 1000

export interface IssueImageIdentityOptions {
  /** A keys directory holding `ca.crt` and `ca.key` (as `origin keys init` makes it). */
  keys: string
  /** CN of the certificate. @default `image-<UTC yyyymmdd-hhmmss>` */
  name?: string
  /** Validity in days, cut at the CA's own expiry. @default 730 */
  validDays?: number
  /** @default Date.now() */
  now?: number
}

async function readPem (file: string, why: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8')
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT'
    throw new OriginError('E_KEY_MISSING', `${missing ? 'missing' : 'cannot read'} ${file}${missing ? '' : `: ${errorMessage(err)}`} (${why})`, { file })
  }
}

/** A fresh node certificate and key for one image, signed with `KEYS/ca.key`. */
export async function issueImageIdentity (opts: IssueImageIdentityOptions): Promise<Identity> {
  const caFile = path.join(opts.keys, 'ca.crt')
  const caKeyFile = path.join(opts.keys, 'ca.key')
  const ca = await readPem(caFile, 'the cluster CA certificate goes into the image')
  const caKey = await readPem(caKeyFile, "each image's own node certificate is signed with the CA key, which stays out of the image")
  const caInfo = parseCertificate(ca)
  if (caInfo.role !== 'ca') throw new OriginError('E_CERT_INVALID', `${caFile} is a ${caInfo.role} certificate, not a ca`, { file: caFile })
  if (!keyMatchesCert(caKey, ca)) throw new OriginError('E_CERT_INVALID', `${caKeyFile} does not belong to ${caFile}`, { file: caKeyFile })
  const now = opts.now ?? Date.now()
  if (caInfo.notAfter.getTime() <= now) throw new OriginError('E_CERT_INVALID', `${caFile} expired on ${isoTime(caInfo.notAfter.getTime())}`, { file: caFile })
  const validDays = opts.validDays ?? 730
  if (!Number.isInteger(validDays) || validDays < 1) throw new OriginError('E_ARGS', `validity must be a whole number of days (1 or more), got ${validDays}`)
  const name = opts.name ?? `image-${isoTime(now).slice(0, 19).replace(/[-:]/g, '').replace('T', '-')}`
  const notBefore = new Date(now - 5 * 60 * 1000)
  const notAfter = new Date(Math.min(now + validDays * DAY_MS, caInfo.notAfter.getTime()))
  // node-forge is loaded only here, to sign: a running node never needs it.
  const { issueCertificate } = require('./certs') as typeof import('./certs')
  const leaf = issueCertificate({ ca: { certPem: ca, keyPem: caKey }, role: 'node', cluster: caInfo.cluster, name, notBefore, notAfter })
  return { ca, cert: leaf.certPem, key: leaf.keyPem, info: parseCertificate(leaf.certPem) }
}

const held = new Map<string, Record<NodeKeyFile, string>>()

/**
 * Serve `files` from memory as the keys directory `label` (e.g. `origin-node:keys`):
 * `loadIdentity({ keys: label })` reads them from here, with the same checks as files.
 */
export function holdKeys (label: string, files: Record<NodeKeyFile, string>): void {
  for (const name of NODE_KEY_FILES) {
    if (typeof files[name] !== 'string' || files[name] === '') throw new OriginError('E_KEY_MISSING', `missing ${label}/${name}`, { file: `${label}/${name}` })
  }
  held.set(label, { ...files })
}

/** The text of a held key file; undefined when `file` is not under a held label (read it from disk). */
export function heldKeyFile (file: string): string | undefined {
  const files = held.get(path.dirname(file))
  if (files === undefined) return undefined
  const text = files[path.basename(file) as NodeKeyFile] as string | undefined
  if (text === undefined) throw new OriginError('E_KEY_MISSING', `missing ${file}`, { file })
  return text
}
