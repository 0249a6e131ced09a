import test from 'ava'
import { applyEnvironment, parseImageConfig } from '../../node/config/image'
import { certificateExpiry } from '../../node/keys/expiry'
import { holdKeys } from '../../node/keys/image'
import { loadIdentity } from '../../node/keys/files'
import { initKeys } from '../../node/keys'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { refusal } from '../helpers/refusal'

const base = parseImageConfig(JSON.stringify({ cluster: 'prod', listen: '10.0.0.5:7400', seeds: ['10.0.0.4:7400'], data: '/var/lib/origin' }))

test('image env: no ORIGIN_ variables leave image.json as it is', (t) => {
  const { config, applied } = applyEnvironment(base, { PATH: '/usr/bin', ORIGIN_LOG_LEVEL: 'warn' })
  t.deepEqual(config, base)
  t.deepEqual(applied, [])
})

test('image env: each variable overrides its image.json field', (t) => {
  const { config, applied } = applyEnvironment(base, {
    ORIGIN_LISTEN: '127.0.0.2:7401',
    ORIGIN_ADVERTISE: '[fd00::5]:7400',
    ORIGIN_DATA: 'here/data',
    ORIGIN_SEEDS: '10.0.0.7:7400,node-b.example:7400'
  })
  t.is(config.listen, '127.0.0.2:7401')
  t.is(config.advertise, '[fd00::5]:7400')
  t.is(config.data, 'here/data')
  t.deepEqual(config.seeds, ['10.0.0.7:7400', 'node-b.example:7400'])
  t.deepEqual(applied.sort(), ['ORIGIN_ADVERTISE', 'ORIGIN_DATA', 'ORIGIN_LISTEN', 'ORIGIN_SEEDS'])
  t.is(base.listen, '10.0.0.5:7400', 'the image config itself is not changed')
})

test('image env: ORIGIN_SEEDS takes commas, spaces or newlines, and empty means no seeds', (t) => {
  t.deepEqual(applyEnvironment(base, { ORIGIN_SEEDS: ' 10.0.0.7:7400, 10.0.0.8:7400\n10.0.0.9:7400 ' }).config.seeds, ['10.0.0.7:7400', '10.0.0.8:7400', '10.0.0.9:7400'])
  t.deepEqual(applyEnvironment(base, { ORIGIN_SEEDS: '' }).config.seeds, [])
})

test('image env: a bad value is refused naming the variable', (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ ORIGIN_LISTEN: 'localhost' }, /^ORIGIN_LISTEN must be HOST:PORT.*got "localhost"/],
    [{ ORIGIN_LISTEN: '10.0.0.5:70000' }, /^ORIGIN_LISTEN must be HOST:PORT with a port from 0 to 65535/],
    [{ ORIGIN_ADVERTISE: '' }, /^ORIGIN_ADVERTISE must be HOST:PORT/],
    [{ ORIGIN_DATA: '  ' }, /^ORIGIN_DATA must be a directory path/],
    [{ ORIGIN_SEEDS: '10.0.0.7:7400,nope' }, /^ORIGIN_SEEDS must be a list of HOST:PORT.*\(entry 2, "nope", is not HOST:PORT\)/]
  ]
  for (const [env, message] of cases) {
    const err = refusal(() => applyEnvironment(base, env))
    t.is(err.code, 'E_CONFIG_INVALID')
    t.regex(err.message, message)
    t.is(err.data.variable, Object.keys(env)[0])
  }
})

test('image env: at most 100 seeds, as in image.json', (t) => {
  const many = Array.from({ length: 101 }, (_, i) => `10.0.${Math.floor(i / 200)}.${i % 200 + 1}:7400`).join(',')
  t.regex(refusal(() => applyEnvironment(base, { ORIGIN_SEEDS: many })).message, /^ORIGIN_SEEDS .*\(101 entries; at most 100\)/)
})

test('certificate expiry: ok far ahead, soon within 30 days, expired after', (t) => {
  const now = Date.parse('2030-01-01T00:00:00Z')
  const at = (days: number): Date => new Date(now + days * 24 * 3600 * 1000)
  const ok = certificateExpiry({ serial: 'AB12', notAfter: at(400) }, now)
  t.is(ok.level, 'ok')
  t.is(ok.daysLeft, 400)
  t.regex(ok.message, /^certificate AB12 expires on 2031-02-05 \(400 days\)$/)
  const soon = certificateExpiry({ serial: 'AB12', notAfter: at(12.5) }, now)
  t.is(soon.level, 'soon')
  t.regex(soon.message, /expires in 12 days \(2030-01-13\): build a new image \(origin build\), roll it out, then revoke serial AB12/)
  t.regex(certificateExpiry({ serial: 'AB12', notAfter: at(0.5) }, now).message, /expires in less than a day/)
  const expired = certificateExpiry({ serial: 'AB12', notAfter: at(-1) }, now)
  t.is(expired.level, 'expired')
  t.regex(expired.message, /expired on 2029-12-31: peers refuse it/)
})

test('held keys: loadIdentity reads keys held in memory with the same checks as files', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-held-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await initKeys({ out: dir, cluster: 'held' })
  const read = async (f: string): Promise<string> => await readFile(join(dir, f), 'utf8')
  holdKeys('test-image:keys', { 'ca.crt': await read('ca.crt'), 'node.crt': await read('node.crt'), 'node.key': await read('node.key') })
  const identity = await loadIdentity({ keys: 'test-image:keys' })
  t.is(identity.info.cluster, 'held')
  t.is(identity.info.role, 'node')
  // A node certificate held as the CA is refused as a file would be.
  holdKeys('bad-image:keys', { 'ca.crt': await read('node.crt'), 'node.crt': await read('node.crt'), 'node.key': await read('node.key') })
  await t.throwsAsync(loadIdentity({ keys: 'bad-image:keys' }), { message: /bad-image:keys\/ca\.crt is a node certificate, not a ca/ })
  await t.throwsAsync(loadIdentity({ keys: 'test-image:keys', as: 'alice' }), { message: /missing test-image:keys\/operators\/alice\.crt|missing/ })
})

test('image env: ORIGIN_DISCOVERY_DNS sets discovery.dns.name (a Kubernetes headless Service), and a bad name is refused naming the variable', (t) => {
  const { config, applied } = applyEnvironment(base, { ORIGIN_DISCOVERY_DNS: 'origin-prod.default.svc.cluster.local' })
  t.is(config.discovery?.dns?.name, 'origin-prod.default.svc.cluster.local')
  t.deepEqual(applied, ['ORIGIN_DISCOVERY_DNS'])
  t.throws(() => applyEnvironment(base, { ORIGIN_DISCOVERY_DNS: 'not a name' }), { message: /^ORIGIN_DISCOVERY_DNS must be a DNS name/ })
})
