/**
 * The Lease contract (node/membership/lease.ts), one suite run against every
 * implementation: lease-etcd against a real etcd and lease-redis against a real
 * redis-server, each started here on free loopback ports (skipped with a message where the
 * program is missing). Every plugin is loaded as image.json would name it, so its config
 * schema is exercised too. Each test takes its own key, so they run side by side.
 */
import test, { type ExecutionContext } from 'ava'
import { existsSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../node/log'
import type { Lease, LeaseGrant } from '../node/membership/lease'
import { loadLayerPlugin } from '../node/plugins'
import { freeLoopbackPort, listening, REDIS_SERVER, startRedis, startServer, type Cleanup } from './helpers/servers'
import { waitFor } from './helpers/wait'

const TTL = 2000

/** Everything the suite started, stopped and removed after it. */
const cleanups: Array<() => Promise<void>> = []
const cleanup: Cleanup = (fn) => { cleanups.push(fn) }
test.after.always(async () => { await Promise.all(cleanups.map(async (fn) => await fn())) })

interface Implementation {
  name: string
  /** Why it cannot run here, if it cannot. */
  missing?: string
  /** Starts the engine once; gives the config image.json would give the plugin. */
  engine: () => Promise<Record<string, unknown>>
  /** A config whose engine nobody answers at. */
  unreachable: (port: number) => Record<string, unknown>
  /** What a rejection for an unreachable engine names. */
  names: (port: number) => RegExp
}

const REDIS_PASSWORD = 'compliance-secret'

const implementations: Implementation[] = [
  {
    name: 'lease-etcd',
    missing: existsSync('/usr/bin/etcd') ? undefined : 'no /usr/bin/etcd (apt-get install etcd-server)',
    engine: async () => {
      const [client, peer] = [await freeLoopbackPort(), await freeLoopbackPort()]
      const url = `http://127.0.0.1:${client}`
      const peerUrl = `http://127.0.0.1:${peer}`
      const s = await startServer('/usr/bin/etcd', (dir) => ['--name', 'e1', '--data-dir', join(dir, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `e1=${peerUrl}`], cleanup)
      await listening(s, client, 'etcd')
      return { endpoints: [url], ttlMs: TTL }
    },
    unreachable: (port) => ({ endpoints: [`http://127.0.0.1:${port}`], requestTimeoutMs: 500 }),
    names: (port) => new RegExp(`127\\.0\\.0\\.1:${port}`)
  },
  {
    name: 'lease-redis',
    missing: existsSync(REDIS_SERVER) ? undefined : `no ${REDIS_SERVER} (apt-get install redis-server)`,
    engine: async () => {
      const { url, passwordFile } = await startRedis(cleanup, REDIS_PASSWORD)
      return { url, ttlMs: TTL, passwordFile }
    },
    unreachable: (port) => ({ url: `redis://127.0.0.1:${port}`, requestTimeoutMs: 500 }),
    names: (port) => new RegExp(`redis 127\\.0\\.0\\.1:${port}`)
  }
]

let keys = 0
for (const impl of implementations) {
  if (impl.missing !== undefined) console.log(`lease compliance: ${impl.name} skipped: ${impl.missing}`)
  const it = impl.missing === undefined ? test : test.skip
  let engine: Promise<Record<string, unknown>> | undefined
  /** Two leases on one fresh key of the engine, as two nodes would have them. */
  const pair = async (t: ExecutionContext): Promise<[Lease, Lease, string]> => {
    const config = await (engine ??= impl.engine())
    const key = `/origin/compliance-${++keys}/downing`
    const make = async (): Promise<Lease> => {
      const l = loadLayerPlugin('lease', { use: impl.name, config }).factory({ key })({ log: silentLogger }) as Lease
      await l.start()
      t.teardown(async () => await l.stop())
      return l
    }
    return [await make(), await make(), key]
  }
  const granted = async (t: ExecutionContext, l: Lease, holder: string): Promise<LeaseGrant> => {
    const r = await l.acquire(holder, TTL)
    if (r.kind !== 'granted') throw new Error(`${holder} should get the free lease: ${JSON.stringify(r)}`)
    return r.grant
  }

  it(`${impl.name}: the first to acquire holds it; a second holder (or the holder again) is refused while it is held`, async (t) => {
    const [a, b, key] = await pair(t)
    t.is(await a.read(), undefined, 'a fresh key: nobody holds it')
    const g = await granted(t, a, 'n1')
    t.like(g, { key, holder: 'n1' })
    t.true(g.token > 0)
    t.true(g.ttlMs >= TTL)
    t.deepEqual(await b.acquire('n2', TTL), { kind: 'taken', key, holder: 'n1', token: g.token })
    t.like(await a.acquire('n1', TTL), { kind: 'taken', holder: 'n1' })
    t.deepEqual(await b.read(), { holder: 'n1', token: g.token })
  })

  it(`${impl.name}: renewing keeps the lease past its ttl`, async (t) => {
    const [a, b] = await pair(t)
    const g = await granted(t, a, 'n1')
    const until = Date.now() + 2 * g.ttlMs
    while (Date.now() < until) {
      t.true(await a.renew(g))
      // The renewal rhythm under test (ttl/4, as a holder renews), not a wait for a condition.
      await new Promise((resolve) => setTimeout(resolve, g.ttlMs / 4))
    }
    t.like(await b.acquire('n2', TTL), { kind: 'taken', holder: 'n1' }, 'still n1\'s after two ttls')
  })

  it(`${impl.name}: releasing lets another in at once with a greater token; the old grant can neither renew nor release the new one`, async (t) => {
    const [a, b, key] = await pair(t)
    const first = await granted(t, a, 'n1')
    await a.release(first)
    await a.release(first)
    t.is(await b.read(), undefined, 'released: nobody holds it')
    const second = await granted(t, b, 'n2')
    t.true(second.token > first.token, `fencing tokens grow: ${first.token} then ${second.token}`)
    t.false(await a.renew(first), 'a released grant cannot be renewed')
    await a.release(first)
    t.deepEqual(await a.read(), { holder: 'n2', token: second.token }, 'releasing a stale grant leaves the new holder\'s')
    t.deepEqual(await a.acquire('n1', TTL), { kind: 'taken', key, holder: 'n2', token: second.token })
  })

  it(`${impl.name}: the fencing token grows with every grant`, async (t) => {
    const [a, b] = await pair(t)
    const tokens: number[] = []
    for (let i = 0; i < 6; i++) {
      const [l, holder] = i % 2 === 0 ? [a, 'n1'] : [b, 'n2']
      const g = await granted(t, l, holder)
      tokens.push(g.token)
      await l.release(g)
    }
    t.deepEqual(tokens, [...tokens].sort((x, y) => x - y))
    t.is(new Set(tokens).size, tokens.length, `all different: ${tokens.join(', ')}`)
  })

  it(`${impl.name}: a grant not renewed expires after its ttl and another gets it; the expired one cannot renew`, async (t) => {
    const [a, b] = await pair(t)
    const g = await granted(t, a, 'n1')
    const at = Date.now()
    const next = await waitFor(async () => { const r = await b.acquire('n2', TTL); return r.kind === 'granted' ? r.grant : undefined }, { what: 'n2 to get the expired lease', timeoutMs: g.ttlMs + 10_000, intervalMs: 100 })
    const took = Date.now() - at
    t.true(took >= g.ttlMs - 250, `not before its ttl: ${took} ms (ttl ${g.ttlMs})`)
    t.true(next.token > g.token)
    t.false(await a.renew(g), 'the expired grant cannot be renewed')
    t.deepEqual(await a.read(), { holder: 'n2', token: next.token })
    t.log(`${impl.name}: expired and taken over after ${took} ms (ttl ${g.ttlMs})`)
  })

  test(`${impl.name}: a call to an engine nobody answers at rejects within its timeout, naming where it tried`, async (t) => {
    const port = await freeLoopbackPort()
    const l = loadLayerPlugin('lease', { use: impl.name, config: impl.unreachable(port) }).factory({ key: '/origin/nobody/downing' })({ log: silentLogger }) as Lease
    await l.start()
    t.teardown(async () => await l.stop())
    const at = Date.now()
    const err = await t.throwsAsync(l.acquire('n1', TTL))
    t.regex(err?.message ?? '', impl.names(port))
    t.true(Date.now() - at < 5000)
  })
}

test('lease-redis: its config is checked against its schema, naming the layer and the field', (t) => {
  const bad = (config: Record<string, unknown>): string => t.throws(() => loadLayerPlugin('lease', { use: 'lease-redis', config }))?.message ?? ''
  t.regex(bad({}), /^layer lease \("lease-redis"\): .*missing required field "url"/)
  t.regex(bad({ url: 'http://127.0.0.1:6379' }), /\/url: must match pattern/)
  t.regex(bad({ url: 'redis://127.0.0.1:6379', ttlMs: 10 }), /\/ttlMs: must be >= 100/)
  t.regex(bad({ url: 'redis://127.0.0.1:6379', password: 'x' }), /unknown field "password"/)
})

if (implementations.find((i) => i.name === 'lease-redis')?.missing === undefined) {
  test('lease-redis: a wrong password is refused in words naming the server', async (t) => {
    const config = await implementations[1].engine()
    const file = join(os.tmpdir(), `origin-lease-wrong-${process.pid}`)
    await writeFile(file, 'wrong\n')
    t.teardown(async () => await rm(file, { force: true }))
    const l = loadLayerPlugin('lease', { use: 'lease-redis', config: { ...config, passwordFile: file } }).factory({ key: '/origin/auth/downing' })({ log: silentLogger }) as Lease
    await l.start()
    t.teardown(async () => await l.stop())
    const err = await t.throwsAsync(l.read())
    t.regex(err?.message ?? '', /^redis 127\.0\.0\.1:\d+: AUTH refused: WRONGPASS/)
  })
}
