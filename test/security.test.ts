import test from 'ava'
import { randomBytes } from 'node:crypto'
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { encodeFrame } from '../node/transport/frames'
import { issueCertificate, loadIdentity } from '../node/keys'
import { connectTo } from '../node/transport'
import { TestCluster, makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'

let c: TestCluster
const foreignDirs: string[] = []
async function foreignKeys (): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-foreign-'))
  foreignDirs.push(dir)
  return await makeKeys(dir, 'test')
}
let address: string

test.before(async () => {
  c = await TestCluster.create()
  address = (await c.start({ name: 'n1' })).address
  await c.start({ name: 'n2' })
  await c.waitForView({ n1: 'alive', n2: 'alive' })
})
test.after.always(async () => {
  await c?.cleanup()
  for (const d of foreignDirs) await rm(d, { recursive: true, force: true })
})

/** n1 still answers an operator, and still sees n2 alive. */
async function stillServing (): Promise<boolean> {
  const view = await c.view('n1')
  return c.node('n1').proc.running && view.n2?.status === 'alive'
}

async function identity (as?: string) {
  const id = await loadIdentity({ keys: c.keys, as })
  return { ca: id.ca, cert: id.cert, key: id.key, cluster: id.info.cluster }
}

const [host, port] = (() => { let h = ''; let p = 0; return [() => h || (h = address.split(':')[0]), () => p || (p = Number(address.split(':')[1]))] })()

test.serial('security: a node of another CA cannot join, and the cluster goes on', async (t) => {
  const foreign = await foreignKeys()
  const x = await c.start({ name: 'x', keys: foreign, seeds: ['n1'] })
  await waitFor(async () => (await x.log()).includes('no seed answered'), { what: 'the foreign node to give up on its seed' })
  const view = await c.view('n1')
  t.false('x' in view, 'the foreign node is not a member')
  t.regex(await x.log(), /cannot connect to .*: .*certificate/i)
  await x.proc.stop()
  t.true(await stillServing())
})

test.serial('security: a client certificate from another CA is refused with a logged reason', async (t) => {
  const foreign = await foreignKeys()
  const stranger = await loadIdentity({ keys: foreign, as: 'op' })
  const ours = await identity('op')
  // Trusts the cluster's CA, so only the node's check of the client certificate can fail.
  await t.throwsAsync(connectTo(address, { ca: ours.ca, cert: stranger.cert, key: stranger.key, cluster: 'test' }))
  await waitFor(async () => /refused a connection from .*: certificate "op" refused: (not signed by this cluster's CA|signed by another CA)/.test(await c.node('n1').log()), { what: 'n1 to log the refusal' })
  t.true(await stillServing())
})

test.serial('security: a client without a certificate is refused', async (t) => {
  const ours = await identity('op')
  const outcome = await new Promise<string>((resolve) => {
    const ws = new WebSocket(`wss://${address}/origin/v1`, { ca: ours.ca, checkServerIdentity: () => undefined } as unknown as WebSocket.ClientOptions)
    ws.once('open', () => { ws.terminate(); resolve('open') })
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve(`${res.statusCode ?? 0} ${body.trim()}`))
    })
    ws.once('error', (e) => resolve(`error: ${e.message}`))
  })
  t.is(outcome, '403 no client certificate (origin requires mutual TLS)')
  await waitFor(async () => /refused a connection from .*: no client certificate/.test(await c.node('n1').log()), { what: 'n1 to log the refusal' })
  t.true(await stillServing())
})

test.serial('security: an expired certificate is refused', async (t) => {
  const ca = { certPem: await readFile(join(c.keys, 'ca.crt'), 'utf8'), keyPem: await readFile(join(c.keys, 'ca.key'), 'utf8') }
  const old = issueCertificate({ ca, role: 'operator', cluster: 'test', name: 'old', notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) })
  const err = await t.throwsAsync(connectTo(address, { ca: ca.certPem, cert: old.certPem, key: old.keyPem, cluster: 'test' }))
  t.regex(err?.message ?? '', /certificate has expired/, 'the client hears why')
  await waitFor(async () => /refused a connection from .*: certificate "old" refused: certificate has expired/.test(await c.node('n1').log()), { what: 'n1 to log the expired certificate' })
  t.true(await stillServing())
})

test.serial('security: a node certificate may not call operator methods, nor an operator mesh methods', async (t) => {
  const asNode = await connectTo(address, await identity())
  const e1 = await t.throwsAsync(asNode.call('cluster.nodes'))
  t.is((e1 as unknown as { code: string }).code, 'E_FORBIDDEN_ROLE')
  t.regex(e1?.message ?? '', /needs a operator certificate|needs an? operator certificate/)
  asNode.close()
  const asOperator = await connectTo(address, await identity('op'))
  const e2 = await t.throwsAsync(asOperator.call('mesh.gossip', { from: 'x', table: {} }))
  t.is((e2 as unknown as { code: string }).code, 'E_FORBIDDEN_ROLE')
  asOperator.close()
  t.regex(await c.node('n1').log(), /refused cluster.nodes from node/)
  t.true(await stillServing())
})

test.serial('security: random and truncated bytes sent to the port do not crash the node', async (t) => {
  const send = async (bytes: Buffer): Promise<void> => await new Promise((resolve) => {
    const s = net.connect(port(), host(), () => { s.end(bytes) })
    s.on('error', () => resolve())
    s.on('close', () => resolve())
    s.resume()
  })
  for (let i = 0; i < 20; i++) await send(randomBytes(1 + Math.floor(Math.random() * 65536)))
  // The start of a TLS ClientHello, cut short.
  await send(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
  await send(Buffer.alloc(0))
  t.true(await stillServing())
})

test.serial('security: malformed and oversized frames close only that connection', async (t) => {
  const ours = await identity('op')
  const open = async (): Promise<WebSocket> => await new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${address}/origin/v1`, { ca: ours.ca, cert: ours.cert, key: ours.key, checkServerIdentity: () => undefined } as unknown as WebSocket.ClientOptions)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
  const closeOf = async (ws: WebSocket): Promise<number> => await new Promise((resolve) => ws.once('close', (code) => resolve(code)))
  const cases: Array<[string, Buffer | string]> = [
    ['not msgpack', Buffer.from([0xc1, 0xc1, 0xc1])],
    ['msgpack that is not a frame', encodeFrame({ t: 'req', id: 1, m: 'cluster.ping' }).subarray(0, 3)],
    ['a frame of the wrong shape', Buffer.from(encodeFrame({ t: 'res', id: 1 } as never).toString('hex').replace('a3726573', 'a3626164'), 'hex')],
    ['a text message', 'hello'],
    ['a frame over the size limit', randomBytes(5 << 20)]
  ]
  for (const [what, bytes] of cases) {
    const ws = await open()
    const closed = closeOf(ws)
    ws.send(bytes)
    const code = await closed
    t.true(code === 1002 || code === 1009 || code === 1006, `${what}: closed with ${code}`)
  }
  const log = await c.node('n1').log()
  t.regex(log, /refused a frame from operator op .*not valid msgpack/)
  t.regex(log, /Max payload size exceeded|over the .* byte limit/)
  t.true(await stillServing())
})
