import test from 'ava'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { OriginError } from '../../node/errors'
import { parseImageConfig, readImageConfig } from '../../node/config/image'
import { refusal } from '../helpers/refusal'

/** The OriginError `fn` throws (fails the test if it throws something else or nothing). */
const parse = (value: unknown): ReturnType<typeof parseImageConfig> => parseImageConfig(JSON.stringify(value))

/** The fields of `config` that `expected` names: optional sections added later need not touch these tests. */
function pick (config: object, expected: object): Record<string, unknown> {
  return Object.fromEntries(Object.keys(expected).map((k) => [k, (config as Record<string, unknown>)[k]]))
}

test('image config: a minimal image.json gets every default', (t) => {
  const expected = {
    cluster: 'prod',
    listen: '0.0.0.0:7400',
    advertise: undefined,
    seeds: [],
    data: 'data',
    name: undefined,
    labels: {},
    characteristics: {},
    membership: {},
    hubs: {},
    log: {}
  }
  t.deepEqual(pick(parse({ cluster: 'prod' }), expected), expected)
})

test('image config: a full image.json is kept as written', (t) => {
  const full = {
    cluster: 'prod',
    listen: '10.0.0.5:7400',
    advertise: '[::1]:7401',
    seeds: ['10.0.0.4:7400', 'edge-2.example:7400'],
    data: '/var/lib/origin',
    name: 'edge-1',
    labels: { zone: 'a' },
    characteristics: { cpus: 4, memoryMb: 8192 },
    membership: { gossipIntervalMs: 200, fanout: 3, suspectAfterMs: 2500, deadAfterMs: 5000, seedRetryMs: 1000 },
    hubs: { count: 3, memoryMargin: 0.1, ranking: ['memory', 'id'] },
    log: { level: 'debug' }
  }
  const parsed = parse({ $schema: './image.schema.json', ...full })
  t.deepEqual(pick(parsed, full), full)
  t.false('$schema' in parsed)
})

test('image config: text that is not JSON is refused with E_CONFIG_INVALID naming the file', (t) => {
  const err = refusal(() => parseImageConfig('{ "cluster": ', '/images/a/image.json'))
  t.is(err.code, 'E_CONFIG_INVALID')
  t.regex(err.message, /^\/images\/a\/image\.json is not valid JSON: /)
  t.deepEqual(err.data, { file: '/images/a/image.json' })
})

test('image config: an unknown field is named', (t) => {
  const err = refusal(() => parse({ cluster: 'prod', colour: 'red' }))
  t.is(err.code, 'E_CONFIG_INVALID')
  t.is(err.message, 'image.json: (root): unknown field "colour"')
  t.regex(refusal(() => parse({ cluster: 'prod', hubs: { size: 3 } })).message, /\/hubs: unknown field "size"/)
})

test('image config: a bad seed address names its index', (t) => {
  const err = refusal(() => parse({ cluster: 'prod', seeds: ['10.0.0.4:7400', 'nope'] }))
  t.is(err.code, 'E_CONFIG_INVALID')
  t.regex(err.message, /\/seeds\/1: must match pattern/)
  t.regex(refusal(() => parse({ cluster: 'prod', seeds: ['10.0.0.4'] })).message, /\/seeds\/0: must match pattern/)
})

test('image config: a missing cluster is named', (t) => {
  const err = refusal(() => parse({ listen: '127.0.0.1:7400' }))
  t.is(err.code, 'E_CONFIG_INVALID')
  t.regex(err.message, /missing required field "cluster"/)
})

test('image config: membership timings below 10 ms are refused', (t) => {
  for (const field of ['gossipIntervalMs', 'suspectAfterMs', 'deadAfterMs', 'seedRetryMs']) {
    const err = refusal(() => parse({ cluster: 'prod', membership: { [field]: 9 } }))
    t.is(err.code, 'E_CONFIG_INVALID', field)
    t.regex(err.message, new RegExp(`/membership/${field}: must be >= 10`), field)
    // deadAfterMs must also exceed suspectAfterMs (tested below), so its boundary needs a smaller suspect.
    const timings = field === 'deadAfterMs' ? { suspectAfterMs: 10, deadAfterMs: 11 } : { [field]: 10 }
    t.notThrows(() => parse({ cluster: 'prod', membership: timings }), field)
  }
})

test('image config: values of the wrong kind are refused with their path', (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ cluster: 'prod', listen: 7400 }, /\/listen: must be string/],
    [{ cluster: 'has space' }, /\/cluster: must match pattern/],
    [{ cluster: 'prod', hubs: { count: 0 } }, /\/hubs\/count: must be >= 1/],
    [{ cluster: 'prod', log: { level: 'loud' } }, /\/log\/level: must be equal to one of the allowed values/],
    [{ cluster: 'prod', characteristics: { cpus: 1.5 } }, /\/characteristics\/cpus: must be integer/],
    [[{ cluster: 'prod' }], /\(root\): must be object/]
  ]
  for (const [value, why] of cases) {
    const err = refusal(() => parse(value))
    t.is(err.code, 'E_CONFIG_INVALID', JSON.stringify(value))
    t.regex(err.message, why)
  }
})

test('image config: readImageConfig names the file it could not read or parse', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-image-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'image.json')
  const missing = await t.throwsAsync(readImageConfig(file))
  t.is((missing as OriginError).code, 'E_CONFIG_INVALID')
  t.true(missing.message.startsWith(`cannot read ${file}`))
  await writeFile(file, JSON.stringify({ cluster: 'prod', colour: 'red' }))
  const bad = await t.throwsAsync(readImageConfig(file))
  t.is(bad.message, `${file}: (root): unknown field "colour"`)
  await writeFile(file, JSON.stringify({ cluster: 'prod' }))
  t.is((await readImageConfig(file)).cluster, 'prod')
})

test('image config: a port over 65535 is refused, every port up to it accepted', (t) => {
  for (const port of ['0', '7400', '09999', '59999', '64999', '65499', '65529', '65535']) {
    t.is(parse({ cluster: 'prod', listen: `127.0.0.1:${port}` }).listen, `127.0.0.1:${port}`)
  }
  for (const [field, value] of [['listen', '127.0.0.1:65536'], ['advertise', '[::1]:99999'], ['listen', '127.0.0.1:70000']]) {
    t.regex(refusal(() => parse({ cluster: 'prod', [field]: value })).message, new RegExp(`/${field}: must match pattern`), value)
  }
  t.regex(refusal(() => parse({ cluster: 'prod', seeds: ['10.0.0.4:7400', 'a:65536'] })).message, /\/seeds\/1: must match pattern/)
})

test('image config: the failure detector\'s settings are accepted and bounded; the defaults are the membership\'s own', (t) => {
  const swim = { probeTimeoutMs: 100, indirectProbes: 2, suspicionConfirmations: 3, maxLocalHealth: 4, retransmitMult: 3, maxDeltasPerMessage: 8, pushPullIntervalMs: 10_000, leaveTimeoutMs: 500, maxMembers: 200 }
  t.like(parse({ cluster: 'c', membership: swim }).membership, swim)
  t.regex(refusal(() => parse({ cluster: 'c', membership: { indirectProbes: 17 } })).message, /\/membership\/indirectProbes: must be <= 16/)
  // deadAfterMs alone is checked against the default suspectAfterMs (600), not an old one.
  t.notThrows(() => parse({ cluster: 'c', membership: { deadAfterMs: 1000 } }))
  t.regex(refusal(() => parse({ cluster: 'c', membership: { deadAfterMs: 500 } })).message, /suspectAfterMs \(600\) must be less than deadAfterMs \(500\)/)
})

test('image config: suspectAfterMs must be less than deadAfterMs', (t) => {
  const err = t.throws(() => parseImageConfig(JSON.stringify({ cluster: 'c', membership: { suspectAfterMs: 5000, deadAfterMs: 4000 } })))
  t.regex(err?.message ?? '', /suspectAfterMs \(5000\) must be less than deadAfterMs \(4000\)/)
})
