/**
 * The `lease` downing strategy against a real etcd (Debian's etcd-server) and a real Redis
 * (redis-server), each started here on free loopback ports and skipped with a message where
 * the program is missing: the lease-etcd plugin's acquire, renew, release, expiry and
 * fencing tokens; then, with each of lease-etcd and lease-redis, real node processes with
 * strategy lease: the survivor of a kill -9 downs the other with no command and runs the
 * singleton; a partition (iptables, root) leaves the singleton on exactly one side.
 */
import test, { type ExecutionContext } from 'ava'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { createCa, issueCertificate } from '../node/keys/certs'
import { silentLogger } from '../node/log'
import type { Lease } from '../node/membership/lease'
import { loadLayerPlugin } from '../node/plugins'
import { EtcdClient, b64, unb64 } from '../plugins/lease-etcd/client'
import { lease as etcdLease } from '../plugins/lease-etcd'
import { running as runningProcs } from './helpers/procs'
import { fastMembership } from './helpers/cluster'
import { specDirCluster } from './helpers/spec-dir'
import { iptablesWorks, isolate } from './helpers/iptables'
import { freeLoopbackPort, REDIS_SERVER, startRedis, startServer, type ServerProcess } from './helpers/servers'
import { waitFor } from './helpers/wait'

const ETCD = '/usr/bin/etcd'
const haveEtcd = existsSync(ETCD)
if (!haveEtcd) console.log(`lease: skipped: no ${ETCD} (apt-get install etcd-server)`)
const etcdTest = haveEtcd ? test.serial : test.serial.skip

interface Etcd { url: string, server: ServerProcess }
/** PEM files: etcd's certificate and key, the CA that signed them, a client certificate and key. */
interface EtcdTls { ca: string, cert: string, key: string, clientCert: string, clientKey: string }

/** A CA, a server certificate for 127.0.0.1 and a client certificate, as files in `dir`. */
async function makeTls (dir: string): Promise<EtcdTls> {
  const ca = createCa('etcd-test')
  const server = issueCertificate({ ca, role: 'node', cluster: 'etcd-test', name: 'etcd' })
  const client = issueCertificate({ ca, role: 'node', cluster: 'etcd-test', name: 'origin' })
  const files = { ca: ca.certPem, cert: server.certPem, key: server.keyPem, clientCert: client.certPem, clientKey: client.keyPem }
  for (const [name, pem] of Object.entries(files)) await writeFile(join(dir, `${name}.pem`), pem, { mode: 0o600 })
  return Object.fromEntries(Object.keys(files).map((name) => [name, join(dir, `${name}.pem`)])) as unknown as EtcdTls
}

/**
 * A one-member etcd on free loopback ports (helpers/servers: its own temp dir, gone at
 * teardown). With `tls`: https, client certificates required.
 */
async function startEtcd (t: ExecutionContext, o: { tls?: boolean } = {}): Promise<Etcd & { tls?: EtcdTls }> {
  const [client, peer] = [await freeLoopbackPort(), await freeLoopbackPort()]
  const scheme = o.tls === true ? 'https' : 'http'
  const url = `${scheme}://127.0.0.1:${client}`
  const peerUrl = `http://127.0.0.1:${peer}`
  // Certificates first, in a dir of their own: etcd reads them as it starts.
  let tls: EtcdTls | undefined
  if (o.tls === true) {
    const dir = await mkdtemp(join(os.tmpdir(), 'origin-etcd-tls-'))
    t.teardown(async () => await rm(dir, { recursive: true, force: true }))
    tls = await makeTls(dir)
  }
  const tlsArgs = tls === undefined ? [] : ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth']
  const server = await startServer(ETCD, (dir) => ['--name', 'e1', '--data-dir', join(dir, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `e1=${peerUrl}`, ...tlsArgs], (fn) => t.teardown(fn))
  const pem = tls === undefined ? undefined : { ca: await readFile(tls.ca, 'utf8'), cert: await readFile(tls.clientCert, 'utf8'), key: await readFile(tls.clientKey, 'utf8') }
  const probe = new EtcdClient({ endpoints: [url], timeoutMs: 1000, tls: pem })
  await waitFor(async () => {
    if (server.proc.exitCode !== null) throw new Error(`etcd exited: ${server.output().slice(-2000)}`)
    return await probe.call('/v3/kv/range', { key: b64('/') }).then(() => true, () => false)
  }, { what: `etcd to answer at ${url}`, timeoutMs: 20_000 })
  return { url, server, tls }
}

async function started (l: Lease): Promise<Lease> {
  await l.start()
  return l
}

etcdTest('lease-etcd: one holder at a time, renewals keep it, release frees it, expiry frees it, and every grant has a greater fencing token', async (t) => {
  const etcd = await startEtcd(t)
  const key = '/origin/test/downing'
  const a = await started(etcdLease({ endpoints: [etcd.url], key, ttlMs: 2000 })({ log: silentLogger }))
  const b = await started(etcdLease({ endpoints: [etcd.url], key, ttlMs: 2000 })({ log: silentLogger }))
  t.teardown(async () => { await a.stop(); await b.stop() })

  const first = await a.acquire('n1', 2000)
  if (first.kind !== 'granted') return t.fail(`n1 should get the free lease: ${JSON.stringify(first)}`)
  t.is(first.grant.holder, 'n1')
  t.is(first.grant.key, key)
  t.true(first.grant.token > 0)
  t.true(first.grant.ttlMs >= 2000)
  t.deepEqual(await b.acquire('n2', 2000), { kind: 'taken', key, holder: 'n1', token: first.grant.token }, 'n2 is told who holds it and with what token')
  t.like(await a.acquire('n1', 2000), { kind: 'taken', holder: 'n1' }, 'a second acquire of a held lease does not succeed, even by its holder')
  t.deepEqual(await b.read(), { holder: 'n1', token: first.grant.token })

  // Renewing past the ttl keeps it.
  const until = Date.now() + 3 * first.grant.ttlMs / 2
  while (Date.now() < until) {
    t.true(await a.renew(first.grant))
    // Paced like a holder renews (ttl/3 at most): this is the renewal rhythm under test, not a wait for a condition.
    await new Promise((resolve) => setTimeout(resolve, first.grant.ttlMs / 4))
  }
  t.like(await b.acquire('n2', 2000), { kind: 'taken', holder: 'n1' }, 'renewed: still n1\'s after 1.5 ttl')

  // Released: the next one gets it at once, with a greater token; the old grant is gone.
  await a.release(first.grant)
  await a.release(first.grant) // releasing twice is not an error
  t.is(await b.read(), undefined, 'released: nobody holds it')
  const second = await b.acquire('n2', 2000)
  if (second.kind !== 'granted') return t.fail(`n2 should get the released lease: ${JSON.stringify(second)}`)
  t.true(second.grant.token > first.grant.token, `fencing tokens grow: ${first.grant.token} then ${second.grant.token}`)
  t.false(await a.renew(first.grant), 'a released grant cannot be renewed')

  // Not renewed: etcd drops it after its ttl, and another takes it.
  const left = Date.now()
  const third = await waitFor(async () => { const r = await a.acquire('n1', 2000); return r.kind === 'granted' ? r : undefined }, { what: 'n2\'s unrenewed lease to expire', timeoutMs: 10_000, intervalMs: 200 })
  const expiredAfter = Date.now() - left
  t.true(expiredAfter >= second.grant.ttlMs - 500, `expired after ${expiredAfter} ms, not before its ttl of ${second.grant.ttlMs} ms`)
  t.true(third.grant.token > second.grant.token)
  t.false(await b.renew(second.grant), 'an expired grant cannot be renewed')
  t.log(`tokens ${first.grant.token}, ${second.grant.token}, ${third.grant.token}; an unrenewed grant of ${second.grant.ttlMs} ms was taken over ${expiredAfter} ms after n2 stopped renewing`)

  // The key deleted by hand and taken by another while n1's etcd lease lives: n1 no longer holds it.
  const etcdc = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 2000 })
  await etcdc.call('/v3/kv/deleterange', { key: b64(key) })
  const fourth = await b.acquire('n2', 2000)
  t.is(fourth.kind, 'granted')
  t.false(await a.renew(third.grant), 'renew checks the key is still the one this grant wrote')
  const range = await etcdc.call('/v3/kv/range', { key: b64(key) })
  t.is(unb64(range.kvs[0].value), 'n2')
})

etcdTest('lease-etcd: an endpoint that is down or never answers is skipped, and errors name every endpoint and what it did', async (t) => {
  const etcd = await startEtcd(t)
  // Accepts connections and never answers.
  const held = new Set<net.Socket>()
  const silent = net.createServer((sock) => { held.add(sock) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const sock of held) sock.destroy(); await new Promise((resolve) => silent.close(resolve)) })
  const mute = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`
  const closed = `http://127.0.0.1:${await freeLoopbackPort()}`
  const l = await started(etcdLease({ endpoints: [closed, mute, etcd.url], key: '/origin/test/failover', requestTimeoutMs: 300 })({ log: silentLogger }))
  t.like(await l.acquire('n1', 2000), { kind: 'granted' }, 'the third endpoint answers')
  await l.stop()

  const dead = await started(etcdLease({ endpoints: [closed, mute], key: '/origin/test/failover', requestTimeoutMs: 300 })({ log: silentLogger }))
  const began = Date.now()
  const err = await t.throwsAsync(dead.acquire('n1', 2000))
  t.true(Date.now() - began < 3000, 'gives up within the timeouts')
  t.regex(err?.message ?? '', new RegExp(`${closed}: .*ECONNREFUSED`))
  t.regex(err?.message ?? '', new RegExp(`${mute}: no answer within 300 ms`))
  await dead.stop()
})

etcdTest('lease-etcd: over https, with the CA and a client certificate from tls files; without them, refused naming the endpoint', async (t) => {
  const etcd = await startEtcd(t, { tls: true })
  const tls = etcd.tls as EtcdTls
  t.regex(etcd.url, /^https:/)
  const good = await started(etcdLease({ endpoints: [etcd.url], key: '/origin/test/tls', tls: { caFile: tls.ca, certFile: tls.clientCert, keyFile: tls.clientKey } })({ log: silentLogger }))
  const r = await good.acquire('n1', 2000)
  t.is(r.kind, 'granted')
  if (r.kind === 'granted') { t.true(await good.renew(r.grant)); await good.release(r.grant) }
  await good.stop()
  const noCa = await started(etcdLease({ endpoints: [etcd.url], key: '/origin/test/tls', requestTimeoutMs: 2000 })({ log: silentLogger }))
  const untrusted = (await t.throwsAsync(noCa.acquire('n1', 2000)))?.message ?? ''
  t.regex(untrusted, new RegExp(`${etcd.url}: .*(certificate|self.signed)`, 'i'))
  await noCa.stop()
  const noClientCert = await started(etcdLease({ endpoints: [etcd.url], key: '/origin/test/tls', tls: { caFile: tls.ca } })({ log: silentLogger }))
  const anonymous = (await t.throwsAsync(noClientCert.acquire('n1', 2000)))?.message ?? ''
  t.regex(anonymous, new RegExp(`${etcd.url}: `))
  t.log(`without the CA: ${untrusted}\nwithout a client certificate: ${anonymous}`)
  await noClientCert.stop()
  await t.throwsAsync(etcdLease({ endpoints: [etcd.url], key: '/origin/test/tls', tls: { caFile: join(os.tmpdir(), 'no-such-ca.pem') } })({ log: silentLogger }).start(), { message: /cannot read tls\.caFile .*no-such-ca\.pem/ })
})

test('lease-etcd: image.json config is checked against its schema, naming the layer and the field', (t) => {
  const bad = (config: Record<string, unknown>): string => t.throws(() => loadLayerPlugin('lease', { use: 'lease-etcd', config }))?.message ?? ''
  t.regex(bad({}), /layer lease \("lease-etcd"\).*missing required field "endpoints"/)
  t.regex(bad({ endpoints: [] }), /endpoints/)
  t.regex(bad({ endpoints: ['127.0.0.1:2379'] }), /endpoints\/0/)
  t.regex(bad({ endpoints: ['http://127.0.0.1:2379'], ttlMs: 10 }), /ttlMs/)
  t.regex(bad({ endpoints: ['http://127.0.0.1:2379'], key: 'no-slash' }), /key/)
  t.regex(bad({ endpoints: ['http://127.0.0.1:2379'], tls: { ca: 'x' } }), /unknown field "ca"/)
  t.notThrows(() => loadLayerPlugin('lease', { use: 'lease-etcd', config: { endpoints: ['http://127.0.0.1:2379', 'https://etcd-2:2379'], ttlMs: 5000, tls: { caFile: '/etc/etcd/ca.pem' } } }))
})

// ---- real nodes, with each lease plugin ----

const REDIS_PASSWORD = 'lease-test-secret'
const DOWNING_KEY = '/origin/test/downing'

/** A lease engine running for one test: the plugin's image.json config, and who holds the downing key. */
interface RunningEngine { config: Record<string, unknown>, holder: () => Promise<string | undefined> }
interface LeaseEngine {
  plugin: 'lease-etcd' | 'lease-redis'
  /** Why it cannot run here, if it cannot. */
  missing?: string
  start: (t: ExecutionContext) => Promise<RunningEngine>
}

/** Who holds the downing key, read through the plugin itself (its Lease contract's read). */
async function holderVia (t: ExecutionContext, plugin: string, config: Record<string, unknown>): Promise<() => Promise<string | undefined>> {
  const l = loadLayerPlugin('lease', { use: plugin, config }).factory({ key: DOWNING_KEY })({ log: silentLogger }) as Lease
  await l.start()
  t.teardown(async () => await l.stop())
  return async () => (await l.read())?.holder
}

const engines: LeaseEngine[] = [
  {
    plugin: 'lease-etcd',
    missing: haveEtcd ? undefined : `no ${ETCD} (apt-get install etcd-server)`,
    start: async (t) => {
      const etcd = await startEtcd(t)
      const etcdc = new EtcdClient({ endpoints: [etcd.url], timeoutMs: 2000 })
      // Read from etcd as it is, not through the plugin: the key holds the holder's name.
      const holder = async (): Promise<string | undefined> => {
        const r = await etcdc.call('/v3/kv/range', { key: b64(DOWNING_KEY) })
        return r.kvs?.[0] === undefined ? undefined : unb64(r.kvs[0].value)
      }
      return { config: { endpoints: [etcd.url] }, holder }
    }
  },
  {
    plugin: 'lease-redis',
    missing: existsSync(REDIS_SERVER) ? undefined : `no ${REDIS_SERVER} (apt-get install redis-server)`,
    start: async (t) => {
      const { url, passwordFile } = await startRedis((fn) => t.teardown(fn), REDIS_PASSWORD)
      const config = { url, passwordFile }
      return { config, holder: await holderVia(t, 'lease-redis', config) }
    }
  }
]
for (const e of engines) if (e.missing !== undefined) console.log(`lease: ${e.plugin} node tests skipped: ${e.missing}`)

const sleeperJs = join(resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs'), 'sleeper.js')
const singleton = { run: { command: 'node', args: [sleeperJs] }, placement: { kind: 'singleton' }, stopGraceMs: 1000 }
const DOWN_AFTER_MS = 3000

async function leaseCluster (t: ExecutionContext, engine: LeaseEngine, ttlMs = 3000, downAfterMs = DOWN_AFTER_MS): Promise<Awaited<ReturnType<typeof specDirCluster>> & { image: Record<string, unknown>, holder: () => Promise<string | undefined> }> {
  const running = await engine.start(t)
  const s = await specDirCluster(t, { membership: { strategy: 'lease', downAfterMs } })
  const image = { specDir: s.dir, layers: { lease: { use: engine.plugin, config: { ...running.config, ttlMs } } } }
  return { ...s, image, holder: running.holder }
}

/**
 * Which of this test's nodes run a copy of the sleeper now, as the host sees it (by the node
 * dir it runs in). Other tests running at the same time run the same fixture: theirs are
 * not in these nodes' dirs and are left out.
 */
async function runningOn (s: Awaited<ReturnType<typeof specDirCluster>>, names: string[]): Promise<string[]> {
  const pids = await runningProcs('node', sleeperJs)
  const cwds = await Promise.all(pids.map(async (pid) => await readlink(`/proc/${pid}/cwd`).catch(() => '')))
  return cwds.flatMap((cwd) => names.filter((n) => cwd.startsWith(s.c.node(n).dir + '/')))
}

test.serial('lease: a node without a lease plugin, told to use strategy lease, says in its log what it needs', async (t) => {
  const s = await specDirCluster(t, { membership: { strategy: 'lease', downAfterMs: DOWN_AFTER_MS } })
  await s.c.start({ name: 'a', image: { specDir: s.dir } })
  await s.c.explainFailure(async () => {
    await waitFor(async () => /error +a\/membership: downing: strategy lease needs a lease plugin in image\.json layers\.lease; this node downs nobody until it has one/.test(await s.c.node('a').log()), { what: 'a to say it has no lease plugin' })
  })
  t.pass()
})

if (!iptablesWorks()) console.log('lease: partition tests skipped: need root and iptables')

for (const engine of engines) {
  const nodeTest = engine.missing === undefined ? test.serial : test.serial.skip
  const partitionTest = engine.missing === undefined && iptablesWorks() ? test.serial : test.serial.skip

  nodeTest(`lease (${engine.plugin}): of two nodes, the survivor of a kill -9 (the lowest id, which keep-majority could not spare) downs it with no command and runs the singleton alone`, async (t) => {
    const s = await leaseCluster(t, engine)
    await s.c.start({ name: 'a', image: s.image })
    await s.c.start({ name: 'b', image: s.image })
    await s.c.explainFailure(async () => {
      await s.c.waitForView({ a: 'alive', b: 'alive' })
      await waitFor(async () => /downing: lease after 3\.0 s/.test(await s.c.node('b').log()), { what: 'b to take the spec\'s downing policy' })
      await s.write('services/one.json', singleton)
      await s.waitInstances('b', 'one', 1)

      const killed = Date.now()
      s.c.node('a').proc.signal('SIGKILL')
      await s.c.waitForView({ a: 'dead' }, { on: ['b'] })
      const dead = Date.now()
      await s.c.waitForView({ a: 'left' }, { on: ['b'], timeoutMs: 30_000 })
      const downed = Date.now()
      const [one] = await waitFor(async () => {
        const r = await s.instances('b', 'one', 'ready')
        return r.length === 1 && r[0].node === 'b' ? r : undefined
      }, { what: 'the singleton to run on b', timeoutMs: 30_000 })
      const ready = Date.now()
      t.is(one.node, 'b')
      // As the host sees it too (the report may be a moment ahead of the process table).
      await waitFor(async () => { const r = await runningOn(s, ['a', 'b']); return r.length === 1 && r[0] === 'b' }, { what: 'one copy running, on b', timeoutMs: 5000 })
      const restarts = (await s.c.node('b').log()).split('\n').filter((l) => / b\/supervisor.*one-0/.test(l) && Date.parse(l.slice(0, 24)) > killed)
      t.log(restarts.join('\n'))
      const log = await s.c.node('b').log()
      t.regex(log, /lease \/origin\/test\/downing acquired, token \d+/)
      t.regex(log, /downing a \(lease: this node holds \/origin\/test\/downing, token \d+; stable for/)
      // The journal says which strategy decided.
      const client = await s.c.client('b')
      const downing = [...(await client.events({ node: 'b' }) ?? [])].filter((e) => e.kind === 'downing')
      t.true(downing.some((e) => e.kind === 'downing' && e.what === 'downed' && e.strategy === 'lease' && /^downing a \(lease: this node holds/.test(e.text)), JSON.stringify(downing))
      // b keeps the lease (a never comes back): the engine says b holds it.
      t.is(await s.holder(), 'b')
      t.log(`${engine.plugin}: kill -9 a -> dead on b ${dead - killed} ms, -> downed ${downed - killed} ms, -> singleton ready on b ${ready - killed} ms (downAfterMs ${DOWN_AFTER_MS})`)
    })
  })

  partitionTest(`lease (${engine.plugin}): two nodes cut apart both reach the lease engine; only the lease holder downs the other and runs the singleton, never both at once; healed, they are one cluster again`, async (t) => {
    const s = await leaseCluster(t, engine)
    let heal = (): void => {}
    t.teardown(async () => { heal() })
    await s.c.start({ name: 'a', image: s.image })
    await s.c.start({ name: 'b', image: s.image })
    await s.c.explainFailure(async () => {
      await s.c.waitForView({ a: 'alive', b: 'alive' })
      await waitFor(async () => (await Promise.all(['a', 'b'].map(async (n) => /downing: lease after 3\.0 s/.test(await s.c.node(n).log())))).every(Boolean), { what: 'both to take the spec\'s downing policy' })
      await s.write('services/one.json', singleton)
      const [first] = await waitFor(async () => { const r = await runningOn(s, ['a', 'b']); return r.length === 1 ? r : undefined }, { what: 'the singleton to run' })
      // From here to the end, sampled every 25 ms: never two copies at once.
      const twice: string[][] = []
      let watching = true
      const watcher = (async () => {
        while (watching) {
          const now = await runningOn(s, ['a', 'b'])
          if (now.length > 1) twice.push(now)
          await new Promise((resolve) => setTimeout(resolve, 25))
        }
      })()
      t.teardown(async () => { watching = false; await watcher })
      // Cut the node that runs the singleton: the case where running it twice is likeliest.
      const cut = first
      const other = cut === 'a' ? 'b' : 'a'
      const cutAt = Date.now()
      heal = isolate(s.c.node(cut).address.split(':')[0])
      const downer = await waitFor(async () => {
        const now = await runningOn(s, ['a', 'b'])
        t.true(now.length <= 1, `never two singletons: ${JSON.stringify(now)}`)
        const logs = await Promise.all(['a', 'b'].map(async (n) => await s.c.node(n).log()))
        const downers = ['a', 'b'].filter((n, i) => new RegExp(`downing ${n === 'a' ? 'b' : 'a'} \\(lease: this node holds`).test(logs[i]))
        return downers.length > 0 && now.length === 1 && now[0] === downers[0] ? downers : undefined
      }, { intervalMs: 25, timeoutMs: 40_000, what: 'one side to down the other and run the singleton' })
      t.is(downer.length, 1, 'only one side downed the other')
      const winner = downer[0]
      const loser = winner === 'a' ? 'b' : 'a'
      const downedAt = Date.now()
      // The loser waits on the lease: it logs who holds it and keeps the singleton stopped.
      await waitFor(async () => new RegExp(`downing: lease: held by ${winner} \\(/origin/test/downing, token \\d+\\)`).test(await s.c.node(loser).log()), { what: `${loser} to say ${winner} holds the lease` })
      for (let i = 0; i < 20; i++) {
        t.deepEqual(await runningOn(s, ['a', 'b']), [winner], 'during the partition, the singleton runs on the lease holder only')
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      t.false(new RegExp(`downing ${winner} \\(`).test(await s.c.node(loser).log()), `${loser} never downed ${winner}`)
      t.log(`${engine.plugin}: cut ${cut} (it ran the singleton; ${other} did not) -> ${winner} downed ${loser} and runs the singleton ${downedAt - cutAt} ms later`)

      heal()
      const healedAt = Date.now()
      await s.c.waitForView({ a: 'alive', b: 'alive' }, { timeoutMs: 30_000 })
      await waitFor(async () => new RegExp('lease /origin/test/downing released \\(token \\d+\\): (a|b) back').test(await s.c.node(winner).log()), { what: `${winner} to release the lease once ${loser} is back` })
      // After the heal the schedule may hand the singleton over (stop, then start elsewhere): never two at once, and one in the end.
      for (let i = 0; i < 20; i++) {
        const now = await runningOn(s, ['a', 'b'])
        t.true(now.length <= 1, `after the heal, never two singletons: ${JSON.stringify(now)}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await waitFor(async () => (await runningOn(s, ['a', 'b'])).length === 1, { what: 'one singleton after the heal' })
      watching = false
      await watcher
      t.deepEqual(twice, [], 'never two copies of the singleton at once, from the cut to the end')
      t.log(`healed -> both alive on both and the lease released ${Date.now() - healedAt} ms later`)
    })
  })

  partitionTest(`lease (${engine.plugin}): three nodes down a lone one cut off, then their lease holder is killed; whichever side takes the lease next, the singleton never runs on both`, async (t) => {
    // A short ttl and a long downAfterMs: b, trying all along, takes the expired lease before
    // the side-mates, who need it only once the holder's death has been stable for 6 s.
    const s = await leaseCluster(t, engine, 2000, 6000)
    let heal = (): void => {}
    t.teardown(async () => { heal() })
    const names = ['a', 'c', 'd', 'b']
    // b declares the others dead slowly (it fences its singletons as soon as they do), so the side of three takes the lease first.
    for (const n of names) await s.c.start({ name: n, image: s.image, ...(n === 'b' ? { membership: { ...fastMembership, deadAfterMs: 6000 } } : {}) })
    const holder = s.holder
    await s.c.explainFailure(async () => {
      await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive', d: 'alive' })
      await waitFor(async () => (await Promise.all(names.map(async (n) => /downing: lease after 6\.0 s/.test(await s.c.node(n).log())))).every(Boolean), { what: 'all to take the spec\'s downing policy' })
      await s.write('services/one.json', singleton)
      await waitFor(async () => { const r = await runningOn(s, names); return r.length === 1 }, { what: 'the singleton to run' })
      const twice: string[][] = []
      let watching = true
      const watcher = (async () => {
        while (watching) {
          const now = await runningOn(s, names)
          if (now.length > 1) twice.push(now)
          await new Promise((resolve) => setTimeout(resolve, 25))
        }
      })()
      t.teardown(async () => { watching = false; await watcher })

      heal = isolate(s.c.node('b').address.split(':')[0])
      await waitFor(async () => (await Promise.all(['a', 'c', 'd'].map(async (n) => /downing b \(lease: this node holds/.test(await s.c.node(n).log())))).some(Boolean), { what: 'the side of three to down b', timeoutMs: 30_000 })
      const first = await holder()
      t.true(first !== undefined && ['a', 'c', 'd'].includes(first), `the side of three holds the lease (${String(first)})`)
      const mates = ['a', 'c', 'd'].filter((n) => n !== first)
      await waitFor(async () => { const r = await runningOn(s, names); return r.length === 1 && mates.concat(first as string).includes(r[0]) }, { what: 'the singleton to run on the side of three' })

      // b, cut off, has been trying for the lease (it sees the three dead): then the holder dies.
      await waitFor(async () => new RegExp(`lease /origin/test/downing held by ${first as string}`).test(await s.c.node('b').log()), { what: `b to see ${first as string} holds the lease`, timeoutMs: 30_000 })
      const killedAt = Date.now()
      s.c.node(first as string).proc.signal('SIGKILL')
      // The lease expires with nobody of its side renewing it; b (needing it all along) or a side-mate takes it, and downs the rest.
      const next = await waitFor(async () => { const h = await holder(); return h !== undefined && h !== first ? h : undefined }, { what: 'someone to take the lease after its holder died', timeoutMs: 30_000 })
      const takenAt = Date.now()
      const runner = await waitFor(async () => { const r = await runningOn(s, names); return r.length === 1 && r[0] === next ? r[0] : undefined }, { what: `the singleton to run on ${next}, the new holder`, timeoutMs: 30_000 })
      t.is(runner, next)
      const runsAt = Date.now()
      for (let i = 0; i < 20; i++) {
        t.deepEqual(await runningOn(s, names), [next], 'only the lease holder\'s side runs it')
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      if (next === 'b') {
        const said = await Promise.all(mates.map(async (n) => /the downing lease is held by b, which this node does not see alive/.test(await s.c.node(n).log())))
        t.true(said.some(Boolean), `${mates.join(' or ')} says it gave the singleton up to the other side's lease`)
      }
      watching = false
      await watcher
      t.deepEqual(twice, [], 'never two copies at once')
      t.log(`${engine.plugin}: ${first as string} held the lease and downed b; killed, the lease went to ${next} ${takenAt - killedAt} ms later (${next === 'b' ? 'the other side: the side-mates stopped their singleton' : 'a side-mate'}), which runs the singleton ${runsAt - killedAt} ms after the kill`)
    })
  })
}
