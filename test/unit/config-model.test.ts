import test from 'ava'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  applyEnvironment, defaultConfig, localConfig, localSettings, parseImageConfig, resolveConfig, specDefaults, type ImageConfig, type NodeConfig
} from '../../node/config'
import { defaultSpecLimits } from '../../node/desired/limits'
import { healthDefaults } from '../../node/health/config'
import { MEMBERSHIP_SETTINGS, membershipDefaults } from '../../node/membership/config'
import { transportDefaults } from '../../node/transport/config'
import { fastMembership } from '../helpers/cluster'
import { refusal } from '../helpers/refusal'

test('config model: a minimal image.json resolves to the defaults with its cluster, every field present', (t) => {
  const config = resolveConfig({ cluster: 'prod' })
  t.deepEqual(config, { ...defaultConfig(), cluster: 'prod' })
  t.is(config.listen, '0.0.0.0:7400')
  t.is(config.membership.deadAfterMs, 2000)
  t.deepEqual(Object.keys(config.membership).sort(), [...MEMBERSHIP_SETTINGS].sort())
  for (const [section, value] of Object.entries({ membership: config.membership, hubs: config.hubs, log: config.log, health: config.health })) {
    for (const [key, v] of Object.entries(value)) t.not(v, undefined, `${section}.${key}`)
  }
})

test('config model: a section given is merged key by key; lists are replaced whole', (t) => {
  const config = resolveConfig({ cluster: 'p', membership: { gossipIntervalMs: 300 }, hubs: { ranking: ['cpus'] }, health: { failChecks: 7 }, log: { level: 'warn' } })
  t.deepEqual(config.membership, { ...defaultConfig().membership, gossipIntervalMs: 300 })
  t.deepEqual(config.hubs, { count: 3, memoryMargin: 0.1, ranking: ['cpus'] })
  t.deepEqual(config.health, { ...healthDefaults, failChecks: 7 })
  t.deepEqual(config.log, { level: 'warn', maxBytes: 10 * 1024 * 1024, keep: 5 })
})

test('config model: any valid membership settings resolve to exactly the given ones over the defaults', (t) => {
  const ms = fc.integer({ min: 10, max: 3_600_000 })
  const given = fc.record({ gossipIntervalMs: ms, suspectAfterMs: ms, deadAfterMs: ms, fanout: fc.integer({ min: 1, max: 64 }), maxMembers: fc.integer({ min: 1, max: 100_000 }) }, { requiredKeys: [] })
  fc.assert(fc.property(given, (membership) => {
    const merged = { ...defaultConfig().membership, ...membership }
    if (merged.suspectAfterMs >= merged.deadAfterMs) {
      return /suspectAfterMs .* must be less than deadAfterMs/.test(refusal(() => resolveConfig({ cluster: 'p', membership })).message)
    }
    return JSON.stringify(resolveConfig({ cluster: 'p', membership }).membership) === JSON.stringify(merged)
  }))
  t.pass()
})

test('config model: a spec section gets its poll interval and every limit; tsTimeoutMs sets fileMs', (t) => {
  t.is(resolveConfig({ cluster: 'p' }).spec, undefined)
  const spec = resolveConfig({ cluster: 'p', spec: { url: 'https://git.example/s.git', limits: { memoryMb: 512 } } }).spec
  t.deepEqual(spec, { url: 'https://git.example/s.git', pollIntervalMs: specDefaults.pollIntervalMs, limits: { ...defaultSpecLimits, memoryMb: 512 } })
  t.is(resolveConfig({ cluster: 'p', spec: { url: 'https://g/s', tsTimeoutMs: 300, limits: { fileMs: 900 } } }).spec?.limits.fileMs, 300)
})

test('config model: a bad image.json is refused naming the source and the field', (t) => {
  const missing = refusal(() => resolveConfig({ listen: '1.2.3.4:7400' }, 'images/a/image.json'))
  t.is(missing.code, 'E_CONFIG_INVALID')
  t.regex(missing.message, /^images\/a\/image\.json: \(root\): missing required field "cluster"/)
  t.regex(refusal(() => resolveConfig({ cluster: 'p', membership: { gossipIntervalMs: 'fast' } })).message, /\/membership\/gossipIntervalMs: must be integer/)
  t.regex(refusal(() => resolveConfig({ cluster: 'p', membership: { suspectAfterMs: 5000 } })).message, /suspectAfterMs \(5000\) must be less than deadAfterMs \(2000\)/)
  t.regex(refusal(() => resolveConfig({ cluster: 'p', membership: { maxClockAheadMs: 10 } })).message, /unknown field "maxClockAheadMs"/, 'only image.json\'s settings may be set')
})

test('config model: parsing then resolving equals resolving the JSON; a resolved config is an ImageConfig', (t) => {
  const text = JSON.stringify({ cluster: 'p', listen: '10.0.0.5:7400', name: 'edge-1', membership: { fanout: 5 }, layers: { discovery: { use: 'discovery-file' } } })
  const viaImage = resolveConfig(parseImageConfig(text))
  t.deepEqual(viaImage, resolveConfig(JSON.parse(text)))
  const image: ImageConfig = viaImage // compiles only while NodeConfig stays assignable to ImageConfig
  const { config } = applyEnvironment(viaImage, { ORIGIN_LISTEN: '10.0.0.9:7400' })
  const resolved: NodeConfig = config
  t.is(resolved.listen, '10.0.0.9:7400')
  t.is(resolved.membership.fanout, 5)
  t.is(image.cluster, 'p')
})

test('config model: the local profile is the defaults with fast failure detection, and test clusters use it', (t) => {
  const local = localConfig()
  t.deepEqual(local, { ...defaultConfig(), membership: { ...defaultConfig().membership, ...localSettings.membership } })
  t.true(local.membership.gossipIntervalMs < defaultConfig().membership.gossipIntervalMs)
  t.true(local.membership.suspectAfterMs < local.membership.deadAfterMs)
  t.deepEqual(fastMembership, localSettings.membership)
  // Over the local profile the suspect/dead order is checked against the local timings.
  t.regex(refusal(() => resolveConfig({ cluster: 'p', membership: { deadAfterMs: 900 } }, 'test', localConfig())).message, /suspectAfterMs \(1000\) must be less than deadAfterMs \(900\)/)
  t.is(resolveConfig({ cluster: 'p', membership: { deadAfterMs: 900 } }).membership.deadAfterMs, 900)
})

test('config model: defaultConfig gives a new object each call', (t) => {
  const a = defaultConfig()
  a.membership.fanout = 99
  a.hubs.ranking.push('id')
  a.seeds.push('x:1')
  t.deepEqual(defaultConfig().membership.fanout, membershipDefaults.fanout)
  t.is(defaultConfig().hubs.ranking.length, 4)
  t.deepEqual(defaultConfig().seeds, [])
})

/** `@default` tags of a source file's documented fields, the numeric ones, by field name. */
function defaultTags (file: string): Map<string, number> {
  const source = readFileSync(join(__dirname, '../../..', file), 'utf8')
  const units: Record<string, number> = { KiB: 1024, MiB: 1024 ** 2 }
  const out = new Map<string, number>()
  for (const m of source.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n\s*(\w+)\??:/g)) {
    const tag = /@default (\d[\d_]*(?:\.\d+)?)(?: (KiB|MiB))?/.exec(m[1])
    if (tag !== null) out.set(m[2], Number(tag[1].replace(/_/g, '')) * (tag[2] === undefined ? 1 : units[tag[2]]))
  }
  return out
}

test('config model: every @default in the layers\' config docs is the value the layer runs with', (t) => {
  const files: Array<[string, Record<string, unknown>]> = [
    ['node/membership/config.ts', membershipDefaults],
    ['node/health/config.ts', healthDefaults],
    ['node/transport/config.ts', transportDefaults],
    ['node/desired/limits.ts', defaultSpecLimits]
  ]
  for (const [file, defaults] of files) {
    const tags = defaultTags(file)
    for (const [key, value] of Object.entries(defaults)) t.is(tags.get(key), value as number, `${file}: ${key}'s @default`)
    for (const key of tags.keys()) t.true(key in defaults, `${file}: ${key} has a @default and no default value`)
  }
})
