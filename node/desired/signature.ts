/**
 * Verifies git's SSH commit signatures (`git config gpg.format ssh`) in-process with
 * node:crypto, so a node needs no ssh-keygen at run time.
 *
 * The signed payload is the raw commit object without its `gpgsig` header (and its
 * continuation lines). Do not use isomorphic-git's `readCommit().payload` for this: it
 * only knows PGP armor and returns the wrong bytes for SSH-signed commits. Read the raw
 * object instead (`git cat-file commit X`, or `readObject({ format: 'content' })`).
 *
 *   const raw = (await git.readObject({ fs, dir, oid, format: 'content' })).object
 *   const check = verifyCommitSignature(Buffer.from(raw as Uint8Array), image.allowedSigners)
 *   if (!check.ok) log.warn(`spec: not applying ${oid}: ${check.reason}`)
 *
 * Signature format: OpenSSH PROTOCOL.sshsig. Key formats: RFC 4253 §6.6, RFC 5656, RFC 8709.
 */
import crypto from 'node:crypto'
import { OriginError, errorMessage } from '../errors'

export interface SshSignature {
  /** The signer's public key in SSH wire format (string type, then the key fields). */
  publicKey: Buffer
  namespace: string
  reserved: Buffer
  hashAlgorithm: 'sha256' | 'sha512'
  /** e.g. `ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`. */
  signatureAlgorithm: string
  signature: Buffer
}

export type SshKeyType = 'ssh-ed25519' | 'ecdsa-sha2-nistp256' | 'ssh-rsa'

export interface AllowedSigner {
  type: SshKeyType
  /** The public key in SSH wire format, as in the base64 field of the line. */
  blob: Buffer
  comment?: string
  /** The principal(s) field of a git allowed_signers line, e.g. `alice@example.com`. */
  principal?: string
}

export type SignatureCheck = { ok: true, signer: string } | { ok: false, reason: string }

const KEY_TYPES: readonly string[] = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa']
const SIG_HEADERS = ['gpgsig', 'gpgsig-sha256'] // sha1 repos sign with the first
const ARMOR = /^-----BEGIN SSH SIGNATURE-----\r?\n([A-Za-z0-9+/=\s]*)-----END SSH SIGNATURE-----\s*$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function fail (message: string, data: Record<string, unknown> = {}): never {
  throw new OriginError('E_SIGNATURE', message, data, 'signature')
}

/** Reads the SSH wire encoding (RFC 4251 §5) with bounds checks. */
class WireReader {
  private pos = 0
  constructor (private readonly buf: Buffer, private readonly what: string) {}

  bytes (n: number): Buffer {
    if (this.pos + n > this.buf.length) fail(`malformed ${this.what}: truncated`)
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  uint32 (): number { return this.bytes(4).readUInt32BE(0) }
  string (): Buffer { return this.bytes(this.uint32()) }
  text (): string { return this.string().toString('utf8') }

  /** An unsigned mpint without its sign-padding zero bytes. */
  mpint (): Buffer {
    const raw = this.string()
    if (raw.length > 0 && (raw[0] & 0x80) !== 0) fail(`malformed ${this.what}: negative integer`)
    let i = 0
    while (i < raw.length && raw[i] === 0) i++
    return raw.subarray(i)
  }

  end (): void {
    if (this.pos !== this.buf.length) fail(`malformed ${this.what}: ${this.buf.length - this.pos} trailing bytes`)
  }
}

function sshString (data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  const len = Buffer.alloc(4)
  len.writeUInt32BE(bytes.length, 0)
  return Buffer.concat([len, bytes])
}

/** The exact signed bytes and the signature; bytes, so a non-UTF-8 commit still verifies. */
function splitSignedBytes (raw: Buffer): { payload: Buffer, signature?: string } {
  const kept: Buffer[] = []
  const found = new Map<string, Buffer[]>()
  let current: Buffer[] | undefined
  let pos = 0
  while (pos < raw.length) {
    const nl = raw.indexOf(0x0a, pos)
    const next = nl === -1 ? raw.length : nl + 1
    const line = raw.subarray(pos, next)
    if (line[0] === 0x0a) { // the blank line: the message follows, kept whole
      kept.push(raw.subarray(pos))
      break
    }
    const space = line.indexOf(0x20)
    const name = space === -1 ? '' : line.subarray(0, space).toString('latin1')
    if (current !== undefined && space === 0) {
      current.push(line.subarray(1))
    } else if (SIG_HEADERS.includes(name)) {
      current = found.get(name) ?? []
      found.set(name, current)
      current.push(line.subarray(space + 1))
    } else {
      current = undefined
      kept.push(line)
    }
    pos = next
  }
  const lines = SIG_HEADERS.map((h) => found.get(h)).find((l) => l !== undefined)
  const payload = Buffer.concat(kept)
  return lines === undefined ? { payload } : { payload, signature: Buffer.concat(lines).toString('utf8') }
}

/**
 * Splits a raw commit object into the payload git signed and the armored signature, as
 * `git verify-commit` does: every `gpgsig` / `gpgsig-sha256` header is removed from the
 * payload; the signature is the `gpgsig` one (or `gpgsig-sha256` in a SHA-256 repo).
 */
export function splitSignedCommit (raw: Buffer | string): { payload: string, signature?: string } {
  const { payload, signature } = splitSignedBytes(toBytes(raw))
  return signature === undefined ? { payload: payload.toString('utf8') } : { payload: payload.toString('utf8'), signature }
}

/** Parses an armored `-----BEGIN SSH SIGNATURE-----` block (PROTOCOL.sshsig). */
export function parseSshSignature (armored: string): SshSignature {
  const match = ARMOR.exec(armored.trim() + '\n')
  if (match === null) fail('not an armored SSH signature (expected -----BEGIN SSH SIGNATURE-----)')
  const b64 = match[1].replace(/\s+/g, '')
  if (!BASE64.test(b64)) fail('malformed SSH signature: the armor is not valid base64')
  const r = new WireReader(Buffer.from(b64, 'base64'), 'SSH signature')
  if (r.bytes(6).toString('latin1') !== 'SSHSIG') fail('malformed SSH signature: missing SSHSIG magic')
  const version = r.uint32()
  if (version !== 1) fail(`SSH signature version ${version} is not supported (expected 1)`, { version })
  const publicKey = r.string()
  const namespace = r.text()
  const reserved = r.string()
  const hashAlgorithm = r.text()
  if (hashAlgorithm !== 'sha256' && hashAlgorithm !== 'sha512') {
    fail(`SSH signature hash algorithm "${hashAlgorithm}" is not supported (expected sha256 or sha512)`)
  }
  const inner = new WireReader(r.string(), 'SSH signature blob')
  r.end()
  const signatureAlgorithm = inner.text()
  const signature = inner.string()
  inner.end()
  return { publicKey, namespace, reserved, hashAlgorithm, signatureAlgorithm, signature }
}

/**
 * Parses `[principal] type base64 [comment]`: an OpenSSH public key line, or a line of
 * git's allowed_signers file. Options (`namespaces=`, `valid-before=`, `cert-authority`)
 * are refused rather than ignored, since ignoring one would accept more than was meant.
 */
export function parseAllowedSigner (line: string): AllowedSigner {
  const tokens = line.trim().split(/\s+/)
  // The key is the first "type base64" pair whose blob names that same type.
  const at = tokens.findIndex((tok, i) => i + 1 < tokens.length && blobType(tokens[i + 1]) === tok)
  if (at === -1) fail(`not an SSH public key line: "${line.trim().slice(0, 60)}"`)
  if (at > 1) fail(`allowed signer options are not supported: "${tokens.slice(1, at).join(' ')}"`)
  const type = tokens[at]
  if (!KEY_TYPES.includes(type)) fail(`SSH key type ${type} is not supported (use ${KEY_TYPES.join(', ')})`)
  const blob = Buffer.from(tokens[at + 1], 'base64')
  sshPublicKeyToKeyObject(blob) // a bad key fails here, when the list is read, not at verify time
  const signer: AllowedSigner = { type: type as SshKeyType, blob }
  if (at === 1) signer.principal = tokens[0]
  if (tokens.length > at + 2) signer.comment = tokens.slice(at + 2).join(' ')
  return signer
}

function blobType (b64: string): string | undefined {
  if (!BASE64.test(b64)) return undefined
  try {
    return new WireReader(Buffer.from(b64, 'base64'), 'SSH public key').text()
  } catch {
    return undefined
  }
}

/** An SSH wire-format public key as a node:crypto key. */
export function sshPublicKeyToKeyObject (blob: Buffer): crypto.KeyObject {
  const r = new WireReader(blob, 'SSH public key')
  const type = r.text()
  let jwk: crypto.JsonWebKey
  if (type === 'ssh-ed25519') {
    const x = r.string()
    if (x.length !== 32) fail(`malformed ssh-ed25519 key: ${x.length} bytes, expected 32`)
    jwk = { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') }
  } else if (type === 'ecdsa-sha2-nistp256') {
    const curve = r.text()
    const q = r.string()
    if (curve !== 'nistp256') fail(`malformed ecdsa-sha2-nistp256 key: curve ${curve}`)
    if (q.length !== 65 || q[0] !== 0x04) fail('malformed ecdsa-sha2-nistp256 key: not an uncompressed P-256 point')
    jwk = { kty: 'EC', crv: 'P-256', x: q.subarray(1, 33).toString('base64url'), y: q.subarray(33).toString('base64url') }
  } else if (type === 'ssh-rsa') {
    const e = r.mpint()
    const n = r.mpint()
    if (n.length * 8 < 1024) fail('ssh-rsa key is shorter than 1024 bits') // OpenSSH's own minimum
    jwk = { kty: 'RSA', e: e.toString('base64url'), n: n.toString('base64url') }
  } else {
    fail(`SSH key type ${type} is not supported (use ${KEY_TYPES.join(', ')})`)
  }
  r.end()
  try {
    return crypto.createPublicKey({ key: jwk, format: 'jwk' })
  } catch (err) {
    fail(`${type} key is not valid: ${errorMessage(err)}`)
  }
}

/** `SHA256:...` as `ssh-keygen -l` prints it. */
export function fingerprint (blob: Buffer): string {
  return 'SHA256:' + crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}

/**
 * Checks that a raw commit object carries a valid SSH signature, in namespace "git", by a
 * key among `allowed` (public key or allowed_signers lines; blank and `#` lines are
 * skipped). Never throws for a bad commit; throws E_SIGNATURE for a malformed allowed line.
 */
export function verifyCommitSignature (raw: Buffer | string, allowed: string[]): SignatureCheck {
  const signers = allowed.map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map(parseAllowedSigner)
  const { payload, signature } = splitSignedBytes(toBytes(raw))
  if (signature === undefined) return refuse('commit is not signed')
  if (!signature.trimStart().startsWith('-----BEGIN SSH SIGNATURE-----')) {
    return refuse('signature is not an SSH signature (PGP signatures are not supported)')
  }
  let sig: SshSignature
  try {
    sig = parseSshSignature(signature)
  } catch (err) {
    return refuse(errorMessage(err))
  }
  const signer = signers.find((s) => s.blob.equals(sig.publicKey))
  if (signer === undefined) return refuse(`signed by a key that is not an allowed signer (${fingerprint(sig.publicKey)})`)
  if (sig.namespace !== 'git') return refuse(`signature namespace is "${sig.namespace}", expected "git"`)
  const data = Buffer.concat([
    Buffer.from('SSHSIG'), sshString('git'), sshString(sig.reserved), sshString(sig.hashAlgorithm),
    sshString(crypto.createHash(sig.hashAlgorithm).update(payload).digest())
  ])
  const problem = checkSignature(signer, sig, data)
  if (problem !== undefined) return refuse(problem)
  return { ok: true, signer: signer.comment ?? signer.principal ?? fingerprint(signer.blob) }
}

/** undefined when `sig` is a valid signature of `data` by the signer's key, else why not. */
function checkSignature (signer: AllowedSigner, sig: SshSignature, data: Buffer): string | undefined {
  const key = sshPublicKeyToKeyObject(signer.blob)
  const alg = sig.signatureAlgorithm
  const mismatch = `signature algorithm ${alg} does not match the ${signer.type} key`
  try {
    switch (signer.type) {
      case 'ssh-ed25519':
        if (alg !== 'ssh-ed25519') return mismatch
        return crypto.verify(null, data, key, sig.signature) ? undefined : 'signature does not verify'
      case 'ecdsa-sha2-nistp256': {
        if (alg !== 'ecdsa-sha2-nistp256') return mismatch
        const r = new WireReader(sig.signature, 'ECDSA signature')
        const rs = [r.mpint(), r.mpint()]
        r.end()
        if (rs.some((n) => n.length > 32)) return 'signature does not verify'
        const p1363 = Buffer.concat(rs.map((n) => Buffer.concat([Buffer.alloc(32 - n.length), n])))
        return crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, p1363) ? undefined : 'signature does not verify'
      }
      case 'ssh-rsa': {
        if (alg === 'ssh-rsa') return 'RSA signatures with SHA-1 (ssh-rsa) are not accepted; sign with rsa-sha2-256 or rsa-sha2-512'
        const hash = alg === 'rsa-sha2-256' ? 'sha256' : alg === 'rsa-sha2-512' ? 'sha512' : undefined
        if (hash === undefined) return mismatch
        // OpenSSH may send a signature shorter than the modulus; OpenSSL wants it full length.
        const size = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8)
        if (sig.signature.length > size) return 'signature does not verify'
        const padded = Buffer.concat([Buffer.alloc(size - sig.signature.length), sig.signature])
        return crypto.verify(hash, data, key, padded) ? undefined : 'signature does not verify'
      }
    }
  } catch {
    return 'signature does not verify'
  }
}

function refuse (reason: string): SignatureCheck {
  return { ok: false, reason }
}

function toBytes (raw: Buffer | string): Buffer {
  return typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw
}
