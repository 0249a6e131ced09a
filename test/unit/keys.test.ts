import test, { type ExecutionContext } from 'ava'
import { generateKeyPairSync } from 'node:crypto'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import forge from 'node-forge'
import { OriginError } from '../../node/errors'
import {
  createCa, issueCertificate, parseCertificate, normalizeSerial,
  initKeys, issueOperator, loadIdentity, type CertAndKey
} from '../../node/keys'
import { keysCommand } from '../../node/cli/keys'

/** A fresh temp dir, removed when the test ends. */
async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'origin-keys-'))
  t.teardown(async () => { await fs.rm(dir, { recursive: true, force: true }) })
  return dir
}

function code (err: unknown): string | undefined {
  return err instanceof OriginError ? err.code : undefined
}

// One CA shared by the tests that only need a signer (RSA keygen is the slow part).
let sharedCa: CertAndKey | undefined
function ca (): CertAndKey {
  sharedCa ??= createCa('alpha')
  return sharedCa
}

test('keys: a node certificate carries its role and cluster', (t) => {
  const cert = issueCertificate({ ca: ca(), role: 'node', cluster: 'alpha', name: 'node-a' })
  const info = parseCertificate(cert.certPem)
  t.is(info.role, 'node')
  t.is(info.cluster, 'alpha')
  t.is(info.name, 'node-a')
  t.regex(info.serial, /^[0-9A-F]+$/)
  t.true(info.notAfter.getTime() - info.notBefore.getTime() >= 2 * 365 * 24 * 3600 * 1000)
})

test('keys: an operator certificate carries its role and cluster and may only dial', (t) => {
  const cert = issueCertificate({ ca: ca(), role: 'operator', cluster: 'alpha', name: 'alice' })
  t.like(parseCertificate(cert.certPem), { role: 'operator', cluster: 'alpha', name: 'alice' })
  const eku = forge.pki.certificateFromPem(cert.certPem).getExtension('extKeyUsage') as { serverAuth?: boolean, clientAuth?: boolean }
  t.true(eku.clientAuth)
  t.falsy(eku.serverAuth)
})

test('keys: the CA is a ca certificate of its cluster', (t) => {
  t.like(parseCertificate(ca().certPem), { role: 'ca', cluster: 'alpha' })
})

test('keys: a certificate can be issued already expired', (t) => {
  const cert = issueCertificate({
    ca: ca(), role: 'node', cluster: 'alpha', name: 'old',
    notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z')
  })
  t.true(parseCertificate(cert.certPem).notAfter.getTime() < Date.now())
})

test('keys: parseCertificate rejects a certificate without an origin role', (t) => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKey)
  cert.serialNumber = '01'
  cert.validity.notBefore = new Date()
  cert.validity.notAfter = new Date(Date.now() + 3600_000)
  const subject = [{ shortName: 'CN', value: 'stranger' }, { shortName: 'O', value: 'alpha' }]
  cert.setSubject(subject)
  cert.setIssuer(subject)
  cert.sign(forge.pki.privateKeyFromPem(pair.privateKey), forge.md.sha256.create())
  const err = t.throws(() => parseCertificate(forge.pki.certificateToPem(cert)))
  t.is(code(err), 'E_CERT_INVALID')
  t.regex(err.message, /OU/)
})

test('keys: parseCertificate rejects text that is not a certificate', (t) => {
  t.is(code(t.throws(() => parseCertificate('hello'))), 'E_CERT_INVALID')
})

test('keys: initKeys writes the four files with 0600 private keys', async (t) => {
  const dir = path.join(await tempDir(t), 'nested', 'keys')
  const { files } = await initKeys({ out: dir, cluster: 'beta', nodeName: 'node-1' })
  t.deepEqual(files.map((f) => path.basename(f)), ['ca.crt', 'ca.key', 'node.crt', 'node.key'])
  for (const key of ['ca.key', 'node.key']) t.is((await fs.stat(path.join(dir, key))).mode & 0o777, 0o600, key)
  const node = parseCertificate(await fs.readFile(path.join(dir, 'node.crt'), 'utf8'))
  t.like(node, { role: 'node', cluster: 'beta', name: 'node-1' })
})

test('keys: a second initKeys into the same dir throws E_KEY_EXISTS and changes nothing', async (t) => {
  const dir = await tempDir(t)
  const { files } = await initKeys({ out: dir, cluster: 'beta' })
  const before = await Promise.all(files.map(async (f) => await fs.readFile(f)))
  const err = await t.throwsAsync(initKeys({ out: dir, cluster: 'beta' }))
  t.is(code(err), 'E_KEY_EXISTS')
  t.true(err.message.includes(path.join(dir, 'ca.crt')))
  const after = await Promise.all(files.map(async (f) => await fs.readFile(f)))
  for (let i = 0; i < files.length; i++) t.true(before[i].equals(after[i]), files[i])
})

test('keys: initKeys refuses when only one of the files already exists', async (t) => {
  const dir = await tempDir(t)
  await fs.writeFile(path.join(dir, 'node.key'), 'precious')
  const err = await t.throwsAsync(initKeys({ out: dir, cluster: 'beta' }))
  t.is(code(err), 'E_KEY_EXISTS')
  t.true(err.message.includes('node.key'))
  t.deepEqual(await fs.readdir(dir), ['node.key'])
  t.is(await fs.readFile(path.join(dir, 'node.key'), 'utf8'), 'precious')
})

test('keys: issueOperator writes an operator certificate of the CA cluster', async (t) => {
  const dir = await tempDir(t)
  await initKeys({ out: dir, cluster: 'gamma' })
  const { files } = await issueOperator({ keys: dir, name: 'alice' })
  t.deepEqual(files, [path.join(dir, 'operators', 'alice.crt'), path.join(dir, 'operators', 'alice.key')])
  t.is((await fs.stat(files[1])).mode & 0o777, 0o600)
  t.like(parseCertificate(await fs.readFile(files[0], 'utf8')), { role: 'operator', cluster: 'gamma', name: 'alice' })
  t.is(code(await t.throwsAsync(issueOperator({ keys: dir, name: 'alice' }))), 'E_KEY_EXISTS')
})

test('keys: issueOperator refuses a name that is not a safe file name', async (t) => {
  const dir = await tempDir(t)
  for (const name of ['../evil', '', '-dash', 'a/b', 'x'.repeat(64)]) {
    t.is(code(await t.throwsAsync(issueOperator({ keys: dir, name }))), 'E_ARGS', name)
  }
})

test('keys: loadIdentity loads the node identity and an operator identity', async (t) => {
  const dir = await tempDir(t)
  await initKeys({ out: dir, cluster: 'delta', nodeName: 'n1' })
  await issueOperator({ keys: dir, name: 'bob' })
  const node = await loadIdentity({ keys: dir })
  t.like(node.info, { role: 'node', cluster: 'delta', name: 'n1' })
  t.is(node.ca, await fs.readFile(path.join(dir, 'ca.crt'), 'utf8'))
  const op = await loadIdentity({ keys: dir, as: 'bob' })
  t.like(op.info, { role: 'operator', cluster: 'delta', name: 'bob' })
})

test('keys: loadIdentity names the missing file', async (t) => {
  const dir = await tempDir(t)
  await initKeys({ out: dir, cluster: 'delta' })
  await fs.rm(path.join(dir, 'node.key'))
  const err = await t.throwsAsync(loadIdentity({ keys: dir }))
  t.is(code(err), 'E_KEY_MISSING')
  t.true(err.message.includes(path.join(dir, 'node.key')))
  const opErr = await t.throwsAsync(loadIdentity({ keys: dir, as: 'nobody' }))
  t.is(code(opErr), 'E_KEY_MISSING')
  t.true(opErr.message.includes(path.join(dir, 'operators', 'nobody.crt')))
})

test('keys: loadIdentity refuses a certificate from another CA', async (t) => {
  const dir = await tempDir(t)
  await initKeys({ out: dir, cluster: 'delta' })
  const foreign = issueCertificate({ ca: createCa('delta'), role: 'node', cluster: 'delta', name: 'node' })
  await fs.rm(path.join(dir, 'node.crt'))
  await fs.rm(path.join(dir, 'node.key'))
  await fs.writeFile(path.join(dir, 'node.crt'), foreign.certPem)
  await fs.writeFile(path.join(dir, 'node.key'), foreign.keyPem)
  const err = await t.throwsAsync(loadIdentity({ keys: dir }))
  t.is(code(err), 'E_CERT_INVALID')
  t.true(err.message.includes('node.crt'))
})

test('keys: normalizeSerial keeps whole bytes like OpenSSL', (t) => {
  t.is(normalizeSerial('00ab12'), 'AB12')
  t.is(normalizeSerial('0a11'), '0A11')
  t.is(normalizeSerial('000a11'), '0A11')
  t.is(normalizeSerial('7f:00'), '7F00')
})

test('keys: normalizeSerial matches the serial node tls shows for a peer', async (t) => {
  const server = issueCertificate({ ca: ca(), role: 'node', cluster: 'alpha', name: 'srv' })
  const client = issueCertificate({ ca: ca(), role: 'operator', cluster: 'alpha', name: 'carol' })
  const srv = tls.createServer({ ca: ca().certPem, cert: server.certPem, key: server.keyPem, requestCert: true, rejectUnauthorized: true })
  const seen = new Promise<{ serial: string, authorized: boolean }>((resolve) => {
    srv.once('secureConnection', (socket: tls.TLSSocket) => {
      resolve({ serial: socket.getPeerCertificate().serialNumber, authorized: socket.authorized })
      socket.end()
    })
  })
  t.teardown(() => { srv.close() })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as { port: number }
  const socket = tls.connect({ host: '127.0.0.1', port, ca: ca().certPem, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined })
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  t.is(normalizeSerial(socket.getPeerCertificate().serialNumber), normalizeSerial(parseCertificate(server.certPem).serial))
  const { serial, authorized } = await seen
  t.true(authorized)
  t.is(serial, normalizeSerial(parseCertificate(client.certPem).serial))
})

test('keys: the keys command refuses missing or unknown arguments with E_ARGS', async (t) => {
  for (const argv of [[], ['rotate'], ['init', '--out', 'x'], ['init', '--cluster', 'c', '--out', 'x', '--bogus'], ['operator', '--keys', 'k'], ['operator', 'alice']]) {
    t.is(code(await t.throwsAsync(keysCommand.run(argv))), 'E_ARGS', argv.join(' '))
  }
})
