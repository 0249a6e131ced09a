import test, { type ExecutionContext } from 'ava'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { OriginError } from '../../node/errors'
import { formatSpecError, loadSpec, readSpecDir, specDigest, type SpecError, type SpecFiles } from '../../node/desired/load'
import type { Spec } from '../../node/desired/types'

const root = join(__dirname, '../../..')

function files (entries: Record<string, string>): SpecFiles {
  return new Map(Object.entries(entries).map(([path, text]) => [path, Buffer.from(text)]))
}

const cluster = { 'cluster.json': '{ "name": "test" }' }
const service = (placement: object, extra: object = {}): string =>
  JSON.stringify({ run: { command: 'node', args: ['x.js'] }, placement, ...extra }, null, 2)

async function loaded (t: ExecutionContext, entries: Record<string, string>): Promise<Spec> {
  const r = await loadSpec(files(entries))
  if (!r.ok) t.fail(r.errors.map(formatSpecError).join('\n'))
  return (r as { spec: Spec }).spec
}

async function errorsOf (t: ExecutionContext, entries: Record<string, string>, opts = {}): Promise<SpecError[]> {
  const r = await loadSpec(files(entries), opts)
  if (r.ok) return t.fail('expected the spec to be refused') as never
  return r.errors
}

const lines = (errors: SpecError[]): string[] => errors.map(formatSpecError)

test('spec: the default specs/ directory loads, one example service per placement kind', async (t) => {
  const r = await loadSpec(await readSpecDir(join(root, 'specs')))
  if (!r.ok) return t.fail(r.errors.map(formatSpecError).join('\n'))
  t.is(r.spec.cluster.name, 'demo')
  t.is(r.spec.cluster.hubs.count, 3)
  t.deepEqual(Object.keys(r.spec.services), ['agent', 'coordinator', 'registry', 'web'])
  t.deepEqual(Object.values(r.spec.services).map((s) => s.placement.kind).sort(), ['every', 'hubs', 'replicas', 'singleton'])
  t.is(r.spec.services.web.placement.count, 2)
  t.deepEqual(Object.keys(r.spec.ops), ['ops/helpers.ts'])
})

test('spec: defaults are filled in the resolved cluster', async (t) => {
  const spec = await loaded(t, { 'cluster.json': '{ "name": "prod", "revokedSerials": ["0A:1b"] }' })
  t.deepEqual(spec.cluster, {
    name: 'prod',
    minNodes: 1,
    belowMinNodes: 'pause',
    hubs: { count: 3, ranking: ['memory', 'cpus', 'uptime', 'id'], memoryMargin: 0.1 },
    revokedSerials: ['0a1b'],
    maxCommitMb: 64
  })
  t.deepEqual(spec.services, {})
  const partial = await loaded(t, { 'cluster.json': '{ "name": "prod", "minNodes": 3, "hubs": { "count": 5 } }' })
  t.is(partial.cluster.minNodes, 3)
  t.deepEqual(partial.cluster.hubs, { count: 5, ranking: ['memory', 'cpus', 'uptime', 'id'], memoryMargin: 0.1 })
})

test('spec: invalid JSON is reported with file, line and column', async (t) => {
  const errors = await errorsOf(t, { ...cluster, 'services/web.json': '{\n  "run": { "command": "node" },\n  "placement": { "kind": "every" },\n}\n' })
  t.deepEqual(lines(errors), ['services/web.json:3:35: invalid JSON: a trailing comma is not allowed in JSON'])
  const [missingColon] = await errorsOf(t, { ...cluster, 'services/web.json': '{\n  "run" {}\n}' })
  t.like(missingColon, { file: 'services/web.json', line: 2, column: 9 })
  t.regex(missingColon.message, /expected ":"/)
  t.like((await errorsOf(t, { ...cluster, 'services/web.json': '' }))[0], { line: 1, column: 1, message: 'invalid JSON: the file is empty' })
  t.like((await errorsOf(t, { ...cluster, 'services/web.json': '{"run": 1, "run": 2}' }))[0], { column: 12, message: 'invalid JSON: duplicate field "run"' })
})

test('spec: an unknown field is named with its JSON path', async (t) => {
  const errors = await errorsOf(t, { ...cluster, 'services/web.json': service({ kind: 'every', zone: 'a' }) })
  t.deepEqual(errors, [{
    file: 'services/web.json',
    path: '/placement/zone',
    message: 'unknown field "zone" (allowed: kind, count, labels, minCpus, minMemoryMb, arch)'
  }])
  t.is(formatSpecError(errors[0]), 'services/web.json:/placement/zone: unknown field "zone" (allowed: kind, count, labels, minCpus, minMemoryMb, arch)')
  t.like((await errorsOf(t, { 'cluster.json': '{ "name": "x", "minNode": 2 }' }))[0], { file: 'cluster.json', path: '/minNode' })
})

test('spec: a bad enum value lists the allowed values', async (t) => {
  const errors = await errorsOf(t, { ...cluster, 'services/web.json': service({ kind: 'everywhere' }) })
  t.deepEqual(lines(errors), ['services/web.json:/placement/kind: must be equal to one of the allowed values (every, hubs, singleton, replicas)'])
  t.deepEqual(lines(await errorsOf(t, { 'cluster.json': '{ "name": "x", "belowMinNodes": "panic" }' })),
    ['cluster.json:/belowMinNodes: must be equal to one of the allowed values (pause, stop, keep)'])
})

test('spec: replicas need a count and other kinds may not have one', async (t) => {
  const errors = await errorsOf(t, {
    ...cluster,
    'services/a.json': service({ kind: 'replicas' }),
    'services/b.json': service({ kind: 'singleton', count: 2 }),
    'services/c.json': service({ kind: 'replicas', count: 0 })
  })
  t.deepEqual(lines(errors), [
    'services/a.json:/placement/count: is required when kind is "replicas"',
    'services/b.json:/placement/count: is allowed only when kind is "replicas"',
    'services/c.json:/placement/count: must be >= 1'
  ])
  t.truthy((await loaded(t, { ...cluster, 'services/a.json': service({ kind: 'replicas', count: 3 }) })).services.a)
})

test('spec: null is refused for an optional field, and health uses at most one check', async (t) => {
  const errors = await errorsOf(t, {
    ...cluster,
    'services/a.json': service({ kind: 'every', arch: null }),
    'services/b.json': service({ kind: 'every' }, { health: { http: { port: 80 }, tcp: { port: 81 } } })
  })
  t.deepEqual(lines(errors), [
    'services/a.json:/placement/arch: must be string',
    'services/b.json:/health: may use at most one of http, tcp, command'
  ])
})

test('spec: cluster.json and cluster.ts together are refused', async (t) => {
  const errors = await errorsOf(t, { ...cluster, 'cluster.ts': 'export default { name: "test" }' })
  t.deepEqual(lines(errors), ['cluster.ts: cluster.json exists too: keep one of the two'])
})

test('spec: a repo with neither cluster.json nor cluster.ts is refused', async (t) => {
  const errors = await errorsOf(t, { 'services/web.json': service({ kind: 'every' }) })
  t.deepEqual(lines(errors), ['cluster.json: not found: the spec repo needs a cluster.json or a cluster.ts at its root'])
})

test('spec: a service file name that is not a valid service name is refused', async (t) => {
  const errors = await errorsOf(t, { ...cluster, 'services/Web_1.json': service({ kind: 'every' }) })
  t.deepEqual(lines(errors), ['services/Web_1.json: the service name "Web_1" (the file name) must match /^[a-z][a-z0-9-]{0,62}$/'])
  const twice = await errorsOf(t, { ...cluster, 'services/web.json': service({ kind: 'every' }), 'services/web.ts': `export default ${service({ kind: 'every' })}` })
  t.deepEqual(lines(twice), ['services/web.ts: service "web" is defined by services/web.json too: keep one of the two'])
})

test('spec: files in subfolders of services/ are code, not specs', async (t) => {
  const spec = await loaded(t, { ...cluster, 'services/web/config.json': '{ not json', 'services/web/Server.ts': 'syntax error (', 'services/README.md': '#' })
  t.deepEqual(spec.services, {})
})

test('spec: a TS spec may import other spec repo files and origin/spec', async (t) => {
  const spec = await loaded(t, {
    'cluster.ts': "import { defineCluster } from 'origin/spec'\nexport default defineCluster({ name: 'ts', minNodes: 2 })",
    'services/api.ts': [
      "import { defineService } from 'origin/spec'",
      "import { base } from '../lib'",
      "import ports from '../lib/ports.json'",
      'export default defineService({ ...base, health: { http: { port: ports.api } } })'
    ].join('\n'),
    'lib/index.ts': "import { every } from './placements'\nexport const base = { run: { command: 'node' }, placement: every }",
    'lib/placements.ts': "export const every = { kind: 'every' as const }",
    'lib/ports.json': '{ "api": 8081 }'
  })
  t.is(spec.cluster.minNodes, 2)
  t.deepEqual(spec.services.api, { run: { command: 'node' }, placement: { kind: 'every' }, health: { http: { port: 8081 } } })
})

test('spec: a TS syntax error is reported with file, line and column', async (t) => {
  const errors = await errorsOf(t, { ...cluster, 'services/web.ts': "export default {\n  run: { command: 'node' ,\n  placement: { kind: 'every' }\n" })
  t.is(errors.length, 1)
  t.like(errors[0], { file: 'services/web.ts', line: 4, column: 1 })
  t.regex(formatSpecError(errors[0]), /^services\/web\.ts:4:1: '\}' expected/)
})

test('spec: a TS spec that throws is reported with its message, file and line', async (t) => {
  const errors = await errorsOf(t, {
    ...cluster,
    'services/web.ts': "import { check } from '../lib/check'\n\ncheck(3)\nexport default {}",
    'lib/check.ts': '// checks\nexport function check (n: number): void {\n  if (n > 2) {\n    throw new RangeError(`too many: ${n}`)\n  }\n}'
  })
  t.deepEqual(lines(errors), ['lib/check.ts:4:11: threw RangeError: too many: 3'])
  const own = await errorsOf(t, { ...cluster, 'services/web.ts': "const a: string = 'x'\nthrow new Error('no ' + a)" })
  t.deepEqual(lines(own), ['services/web.ts:2:7: threw Error: no x'])
})

// serial: evaluations queue one at a time
test.serial('spec: a TS spec that never finishes is stopped by the time limit, and the next one still loads', async (t) => {
  const start = Date.now()
  const errors = await errorsOf(t, {
    ...cluster,
    'services/a.ts': 'while (true) {}',
    'services/b.ts': `export default ${service({ kind: 'every' })}`,
    'services/c.ts': 'Promise.resolve().then(() => { for (;;) {} })\nexport default {}'
  })
  t.deepEqual(lines(errors), ['services/a.ts: ran past its 1000 ms time limit', 'services/c.ts: ran past its 1000 ms time limit'])
  // The limits are CPU time: how long two of them take in real time depends on the machine's load.
  t.log(`two 1 s file limits, ${Date.now() - start} ms of real time`)
  t.deepEqual(lines(await errorsOf(t, { ...cluster, 'services/a.ts': 'for (;;) {}' }, { tsTimeoutMs: 50 })), ['services/a.ts: ran past its 50 ms time limit'])
})

test('spec: a TS spec may import only files of the spec repo and origin/spec', async (t) => {
  const errors = await errorsOf(t, {
    ...cluster,
    'services/a.ts': "const fs = require('fs')\nexport default fs.readFileSync('/etc/passwd', 'utf8')",
    'services/b.ts': "import * as cp from 'child_process'\nexport default cp",
    'services/c.ts': "import secrets from '../../etc/passwd'\nexport default secrets",
    'services/d.ts': "import x from 'node:fs'\nexport default x",
    'services/e.ts': "import x from '/etc/hosts'\nexport default x"
  })
  t.deepEqual(errors.map((e) => `${e.file}: ${e.message}`), [
    'services/a.ts: may import only files of the spec repo and \'origin/spec\', not "fs"',
    'services/b.ts: may import only files of the spec repo and \'origin/spec\', not "child_process"',
    'services/c.ts: may import only files of the spec repo and \'origin/spec\', not "../../etc/passwd"',
    'services/d.ts: may import only files of the spec repo and \'origin/spec\', not "node:fs"',
    'services/e.ts: may import only files of the spec repo and \'origin/spec\', not "/etc/hosts"'
  ])
  t.true(errors.every((e) => e.line === 1))
})

test('spec: a TS spec sees no process and cannot reach the host through constructors', async (t) => {
  const errors = await errorsOf(t, {
    ...cluster,
    'services/a.ts': 'export default (process as any).env',
    'services/b.ts': "export default (globalThis as any).constructor.constructor('return process')()",
    'services/c.ts': "let p: any\ntry { require('fs') } catch (e: any) { p = e.constructor.constructor('return process')() }\nexport default p",
    'services/d.ts': "export default (require as any).constructor('return process')()"
  })
  t.is(errors.length, 4)
  t.regex(errors[0].message, /ReferenceError: process is not defined/)
  for (const e of errors.slice(1)) t.regex(e.message, /EvalError: Code generation from strings disallowed/)
})

test('spec: a TS import cycle, a missing import and a non-data export are reported', async (t) => {
  const errors = await errorsOf(t, {
    ...cluster,
    'services/a.ts': "import '../lib/x'\nexport default {}",
    'lib/x.ts': "import './y'\nexport const x = 1",
    'lib/y.ts': "import './x'\nexport const y = 1",
    'services/b.ts': "import '../lib/nope'\nexport default {}",
    'services/c.ts': `export default { ...${service({ kind: 'every' })}, stopGraceMs: () => 1 }`,
    'services/d.ts': 'export const notDefault = 1'
  })
  t.deepEqual(lines(errors), [
    'lib/y.ts:1:1: import cycle: services/a.ts -> lib/x.ts -> lib/y.ts -> lib/x.ts',
    'services/b.ts:1:1: cannot find "../lib/nope" (looked for lib/nope.ts, lib/nope.json, lib/nope/index.ts)',
    'services/c.ts: the value at "stopGraceMs" is a function; a spec holds only plain data',
    'services/d.ts: has no default export (write: export default defineService({ ... }))'
  ])
})

test('spec: errors from several files are all reported', async (t) => {
  const errors = await errorsOf(t, {
    'cluster.json': '{ "name": "x", "minNodes": 0 }',
    'services/a.json': '{',
    'services/b.json': service({ kind: 'hubs' }, { restart: { policy: 'sometimes' } }),
    'services/c.ts': 'export default {',
    'services/d.ts': "throw new Error('d')",
    'services/ok.json': service({ kind: 'every' })
  })
  t.deepEqual(errors.map((e) => e.file), ['cluster.json', 'services/a.json', 'services/b.json', 'services/c.ts', 'services/d.ts'])
})

test('spec: ops helpers and plugins are listed, not evaluated', async (t) => {
  const spec = await loaded(t, {
    ...cluster,
    'ops/helpers.ts': 'while (true) {}',
    'ops/lib/more.ts': 'x',
    'ops/README.md': '#',
    'plugins/etcd-lease/index.js': '',
    'plugins/README.md': ''
  })
  t.deepEqual(spec.ops, { 'ops/helpers.ts': 'while (true) {}' })
  t.deepEqual(spec.plugins, ['plugins/README.md', 'plugins/etcd-lease/index.js'])
})

test('spec: formatSpecError writes file, line and column or JSON path', async (t) => {
  t.is(formatSpecError({ file: 'cluster.ts', line: 12, column: 5, message: 'boom' }), 'cluster.ts:12:5: boom')
  t.is(formatSpecError({ file: 'services/web.json', path: '/placement/kind', message: 'bad' }), 'services/web.json:/placement/kind: bad')
  t.is(formatSpecError({ file: 'cluster.json', message: 'missing' }), 'cluster.json: missing')
})

test('spec: readSpecDir skips .git and node_modules, and the digest follows content only', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'origin-spec-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, '.git'))
  await mkdir(join(dir, 'services/web/node_modules/x'), { recursive: true })
  await writeFile(join(dir, '.git/HEAD'), 'ref')
  await writeFile(join(dir, 'services/web/node_modules/x/index.js'), '')
  await writeFile(join(dir, 'cluster.json'), '{ "name": "d" }')
  await writeFile(join(dir, 'services/web/server.js'), '')
  const read = await readSpecDir(dir)
  t.deepEqual([...read.keys()].sort(), ['cluster.json', 'services/web/server.js'])
  const reordered = new Map([...read.entries()].reverse())
  t.is(specDigest(read), specDigest(reordered))
  t.regex(specDigest(read), /^[0-9a-f]{64}$/)
  t.not(specDigest(read), specDigest(new Map([...read, ['cluster.json', Buffer.from('{ "name": "e" }')]])))
  const err = await t.throwsAsync(readSpecDir(dir, { maxBytes: 10 }), { instanceOf: OriginError })
  t.is((err as OriginError).code, 'E_SPEC_INVALID')
  t.regex(err?.message ?? '', /holds more than/)
  await t.throwsAsync(readSpecDir(join(dir, 'nope')), { message: /cannot read spec directory/ })
})

test('spec: downing under its contract names (membership.downAfterMs, strategy) resolves like downing; both at once is refused', async (t) => {
  const spec = await loaded(t, { 'cluster.json': '{ "name": "prod", "membership": { "strategy": "keep-oldest", "downAfterMs": 9000 } }' })
  t.like(spec.cluster.downing, { strategy: 'keep-oldest', afterMs: 9000 })
  t.deepEqual(lines(await errorsOf(t, { 'cluster.json': '{ "name": "x", "membership": {}, "downing": {} }' })),
    ['cluster.json:/membership: gives the downing settings a second time: keep "membership" or "downing", not both'])
})
