import test from 'ava'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { defaultConfig, specDefaults } from '../../node/config'
import { LAYER_NAMES } from '../../node/plugins'

/**
 * README.md's settings tables read back as data: every default a table states, by its
 * path in the config (`membership.deadAfterMs`), and the paths a table names without a
 * default (`none`, `required`, ...). Two tables: `| setting (`<section>`) | default |
 * trade-off |` (one setting a row) and `| field | meaning | default |` (image.json's
 * fields; a section's settings are listed in its meaning cell as `` `key` (default) ``).
 */
interface Claims { values: Map<string, unknown[]>, unset: Set<string>, rows: Map<string, string[]> }

const readme = readFileSync(join(__dirname, '../../../README.md'), 'utf8')
const UNITS: Record<string, number> = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }

/** A default as the README writes it: `json` or `text` in backticks, a number (with a unit), `[]`, `{}`; anything else is prose. */
function readValue (text: string): { value: unknown } | undefined {
  const s = text.trim()
  const quoted = /^`([^`]*)`$/.exec(s)
  if (quoted !== null) {
    try { return { value: JSON.parse(quoted[1]) } } catch { return { value: quoted[1] } }
  }
  const sized = /^(\d+(?:\.\d+)?) (KiB|MiB|GiB)$/.exec(s)
  if (sized !== null) return { value: Number(sized[1]) * UNITS[sized[2]] }
  try { return { value: JSON.parse(s) } } catch { return undefined }
}

function cells (line: string): string[] {
  return line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim())
}

/** Each table whose header row matches `header`: the header's match and the rows' cells. */
function tables (header: RegExp): Array<{ head: RegExpExecArray, rows: string[][] }> {
  const lines = readme.split('\n')
  const out: Array<{ head: RegExpExecArray, rows: string[][] }> = []
  for (let i = 0; i < lines.length; i++) {
    const head = header.exec(lines[i])
    if (head === null) continue
    const rows: string[][] = []
    for (let j = i + 2; j < lines.length && lines[j].startsWith('|'); j++) rows.push(cells(lines[j]))
    out.push({ head, rows })
  }
  return out
}

function readClaims (): Claims {
  const claims: Claims = { values: new Map(), unset: new Set(), rows: new Map() }
  const claim = (path: string, value: unknown): void => { claims.values.set(path, [...(claims.values.get(path) ?? []), value]) }
  for (const { head, rows } of tables(/^\| setting \(`([a-z]+)`\) \| default \| trade-off \|$/)) {
    for (const [key, value, tradeOff] of rows) {
      const path = `${head[1]}.${key.replace(/`/g, '')}`
      claims.rows.set(path, [key, value, tradeOff])
      const v = readValue(value)
      claim(path, v === undefined ? new Error(`cannot read "${value}"`) : v.value)
    }
  }
  for (const { rows } of tables(/^\| field \| meaning \| default \|$/)) {
    for (const [field, meaning, value] of rows) {
      const name = field.replace(/`/g, '')
      claims.rows.set(name, [field, meaning, value])
      // Only a section's meaning lists defaults; elsewhere `x` (...) is a remark.
      for (const m of sections.has(name) ? meaning.matchAll(/`([A-Za-z][\w.]*)` \(([^()]*)\)/g) : []) {
        const v = readValue(m[2].split(/;\s/)[0])
        claim(`${name}.${m[1]}`, v === undefined ? new Error(`cannot read "${m[2]}"`) : v.value)
      }
      if (value === '') continue
      const v = readValue(value)
      if (v === undefined) claims.unset.add(name)
      else claim(name, v.value)
    }
  }
  return claims
}

/** Every setting with its default: sections (non-empty objects) opened, the rest leaves. */
function settings (o: Record<string, unknown>, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>()
  for (const [k, v] of Object.entries(o)) {
    const path = prefix === '' ? k : `${prefix}.${k}`
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
      for (const [p, x] of settings(v as Record<string, unknown>, path)) out.set(p, x)
    } else {
      out.set(path, v)
    }
  }
  return out
}

/** The defaults the tables document: the node's, and what a given `spec` section is filled with. */
const documented = settings({ ...defaultConfig(), spec: specDefaults } as unknown as Record<string, unknown>)
const sections = new Set([...documented.keys()].filter((p) => p.includes('.')).map((p) => p.slice(0, p.indexOf('.'))))
const isUnset = (v: unknown): boolean => v === undefined || (typeof v === 'object' && v !== null && Object.keys(v).length === 0)

test('config readme: every default a settings table states is the default the node runs with', (t) => {
  const claims = readClaims()
  t.true(claims.values.size >= 30, `read only ${claims.values.size} defaults from the tables`)
  for (const [path, values] of claims.values) {
    t.true(documented.has(path), `README states a default for ${path}, which is not a setting`)
    for (const value of values) t.deepEqual(value, documented.get(path), `README's default for ${path}`)
  }
})

test('config readme: a field a table gives no default has none', (t) => {
  const claims = readClaims()
  for (const path of claims.unset) {
    if (sections.has(path)) continue // an optional section ("none"): its settings are checked one by one
    t.true(!documented.has(path) || isUnset(documented.get(path)), `README says ${path} has no default, the config has ${JSON.stringify(documented.get(path))}`)
  }
})

test('config readme: every setting of the config is in a table', (t) => {
  const claims = readClaims()
  for (const [path, value] of documented) {
    const named = claims.values.has(path) || claims.unset.has(path) || claims.rows.has(path)
    t.true(named, `${path} (default ${JSON.stringify(value)}) is in no settings table of README.md`)
    if (!isUnset(value)) t.true(claims.values.has(path), `README states no default for ${path} (${JSON.stringify(value)})`)
  }
  t.true(claims.rows.has('cluster'), 'the one field without a default is in the table too')
})

test('config readme: each membership setting says what it trades', (t) => {
  const rows = [...readClaims().rows].filter(([path]) => path.startsWith('membership.'))
  t.is(rows.length, Object.keys(defaultConfig().membership).length)
  for (const [path, [, , tradeOff]] of rows) t.true(tradeOff.length > 20, `${path}: "${tradeOff}"`)
})

test('config readme: the layers row names every layer a plugin may replace', (t) => {
  const row = readClaims().rows.get('layers')
  t.truthy(row)
  const named = new Set([...(row?.[1] ?? '').matchAll(/`([a-z]+)`/g)].map((m) => m[1]))
  for (const layer of LAYER_NAMES) t.true(named.has(layer), `layers row lacks ${layer}`)
})

test('config readme: the reader tells a wrong default from a right one', (t) => {
  t.deepEqual(readValue('10 MiB'), { value: 10 * 1024 * 1024 })
  t.deepEqual(readValue('`["memory","id"]`'), { value: ['memory', 'id'] })
  t.deepEqual(readValue('`0.0.0.0:7400`'), { value: '0.0.0.0:7400' })
  t.deepEqual(readValue('[]'), { value: [] })
  t.is(readValue('the listen address'), undefined)
  t.notDeepEqual(readValue('2500')?.value, documented.get('membership.suspectAfterMs'))
})
