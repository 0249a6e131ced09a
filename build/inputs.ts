/**
 * What goes into an image, and the check that keeps the cluster's other keys out of it.
 * An image holds `ca.crt`, its own node certificate and key, and the secret files of its
 * services; never the CA key (whoever holds it can make any node or operator) and never an
 * operator's key (it opens the REPL on the whole cluster). Every file is checked by name
 * and by content, so a copy of `ca.key` renamed into the secrets folder is refused too.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { OriginError, errorMessage } from '../node/errors'
import { keyMatchesCert, parseCertificate } from '../node/keys/read'

/** One file the image will carry: where it goes in the image and where it came from. */
export interface ImageFile {
  /** Path inside the image, e.g. `keys/node.key` or `secrets/db-password`. */
  path: string
  content: Buffer
  /** Where it was read from or how it was made, for messages. */
  source: string
}

/** The certificates the cluster's keys directory holds, to recognise their private keys. */
export interface KnownCertificates {
  ca: string
  /** Operator name -> certificate PEM (from KEYS/operators/). */
  operators: Record<string, string>
}

const CA_KEY_WHY = "it is the cluster CA's private key: whoever holds it can make certificates for any node or operator. It stays where images are built and signs each image's own node certificate; it never goes into an image"
const OPERATOR_WHY = 'operator keys open the REPL on the whole cluster to whoever holds them; they stay with their person, never in a node image'

const PRIVATE_KEY = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/g
const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** Reads `KEYS/ca.crt` and every `KEYS/operators/*.crt`. */
export async function knownCertificates (keys: string): Promise<KnownCertificates> {
  const ca = await fs.readFile(path.join(keys, 'ca.crt'), 'utf8')
  const operators: Record<string, string> = {}
  const dir = path.join(keys, 'operators')
  const names = await fs.readdir(dir).catch(() => [] as string[])
  for (const name of names.filter((n) => n.endsWith('.crt'))) {
    operators[name.slice(0, -4)] = await fs.readFile(path.join(dir, name), 'utf8').catch(() => '')
  }
  return { ca, operators }
}

function refuse (file: ImageFile, why: string): never {
  throw new OriginError('E_CONFIG_INVALID', `refusing to put ${file.source} into the image (as ${file.path}): ${why}`, { file: file.source, refused: file.path })
}

/** Throws E_CONFIG_INVALID naming the file and why, if any file is the CA key or an operator's key or certificate. */
export function refuseClusterSecrets (files: ImageFile[], known: KnownCertificates): void {
  for (const file of files) {
    const base = path.basename(file.path)
    if (base === 'ca.key' || path.basename(file.source) === 'ca.key') refuse(file, CA_KEY_WHY)
    if (file.path.split('/').includes('operators') || file.source.split(path.sep).includes('operators')) refuse(file, OPERATOR_WHY)
    const text = file.content.toString('latin1')
    for (const key of text.match(PRIVATE_KEY) ?? []) {
      if (keyMatchesCert(key, known.ca)) refuse(file, CA_KEY_WHY)
      for (const [name, cert] of Object.entries(known.operators)) {
        if (cert !== '' && keyMatchesCert(key, cert)) refuse(file, `it is the private key of operator ${name}: ${OPERATOR_WHY}`)
      }
    }
    for (const cert of text.match(CERTIFICATE) ?? []) {
      let role: string | undefined
      try { role = parseCertificate(cert).role } catch { continue } // not one of the cluster's: a service's own, say
      if (role === 'operator') refuse(file, `it holds an operator certificate: ${OPERATOR_WHY}`)
    }
  }
}

const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** The secret files of `dir` (regular files with a valid secret name; anything else is an error naming it). */
export async function readSecrets (dir: string): Promise<ImageFile[]> {
  let entries: import('node:fs').Dirent[]
  try {
    entries = await fs.readdir(dir, { withFileTypes: true })
  } catch (err) {
    throw new OriginError('E_ARGS', `cannot read the secrets folder ${dir}: ${errorMessage(err)}`, { file: dir })
  }
  const files: ImageFile[] = []
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const source = path.join(dir, e.name)
    if (!e.isFile()) throw new OriginError('E_ARGS', `${source}: the secrets folder holds files only (one secret a file)`, { file: source })
    if (!SECRET_NAME.test(e.name)) throw new OriginError('E_ARGS', `${source}: a secret's name must match ${SECRET_NAME.source}`, { file: source })
    files.push({ path: `secrets/${e.name}`, content: await fs.readFile(source), source })
  }
  return files
}
