import test from 'ava'
import { formatSpecError, loadSpec, type LoadOptions, type SpecFiles } from '../../node/desired/load'

// Evaluations queue one at a time per process, and several tests here are timed: all serial.

function files (entries: Record<string, string>): SpecFiles {
  return new Map(Object.entries(entries).map(([path, text]) => [path, Buffer.from(text)]))
}

const cluster = { 'cluster.json': '{ "name": "test" }' }
const service = JSON.stringify({ run: { command: 'node', args: ['x.js'] }, placement: { kind: 'every' } })

async function errorsOf (entries: Record<string, string>, opts: LoadOptions = {}): Promise<string[]> {
  const r = await loadSpec(files(entries), opts)
  if (r.ok) throw new Error('expected the spec to be refused')
  return r.errors.map(formatSpecError)
}

test.serial('spec eval: a Uint8Array bomb is stopped by the memory limit, with the file and the limit named', async (t) => {
  const started = Date.now()
  const errors = await errorsOf({ ...cluster, 'services/bomb.ts': 'new Uint8Array(2 ** 31).fill(1)\nexport default {}\n', 'services/ok.ts': `export default ${service}` }, { limits: { memoryMb: 64 } })
  t.is(errors.length, 1, errors.join('\n'))
  t.regex(errors[0], /^services\/bomb\.ts:1:1: evaluation used more than 64 MiB of memory/)
  t.true(Date.now() - started < 5000, `took ${Date.now() - started} ms`)
  t.is(new Uint8Array(8).fill(1).length, 8, 'this process is untouched')
})

test.serial('spec eval: a heap that keeps growing gets the evaluator killed, named as a memory problem', async (t) => {
  const errors = await errorsOf({
    ...cluster,
    'services/grow.ts': 'const keep: unknown[] = []\nfor (let i = 0; ; i++) keep.push({ i, s: "x".repeat(64) + i })\n'
  }, { limits: { memoryMb: 32, fileMs: 20_000, totalMs: 30_000 } })
  t.deepEqual(errors, ['services/grow.ts: evaluation used more than 32 MiB of memory; killed'])
})

test.serial('spec eval: ten looping files are stopped at the total limit, not after ten file limits', async (t) => {
  const loops = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`services/loop${i}.ts`, 'while (true) {}\nexport default {}\n']))
  const started = Date.now()
  const errors = await errorsOf({ ...cluster, ...loops }, { limits: { totalMs: 2000, fileMs: 1000 } })
  const took = Date.now() - started
  t.deepEqual(errors, [
    'services/loop0.ts: ran past its 1000 ms time limit',
    'services/loop1.ts: spec evaluation took longer than 2 s in total (this file was running); killed'
  ])
  t.true(took >= 2000, `took ${took} ms`)
  t.true(took < 5000, `took ${took} ms; ten file limits would be 10 s`) // the evaluator's start is not counted in the 2 s
})

test.serial('spec eval: the event loop of the node stays free while a spec loops', async (t) => {
  let last = Date.now()
  let worst = 0
  const timer = setInterval(() => { const now = Date.now(); worst = Math.max(worst, now - last); last = now }, 10)
  const errors = await errorsOf({ ...cluster, 'services/spin.ts': 'for (;;) {}' }, { tsTimeoutMs: 1500 })
  clearInterval(timer)
  t.deepEqual(errors, ['services/spin.ts: ran past its 1500 ms time limit'])
  t.true(worst < 400, `the event loop stalled for ${worst} ms`)
})

test.serial('spec eval: Object.prototype.toJSON set by one file is that file\'s error; the next file and the node are not affected', async (t) => {
  const r = await loadSpec(files({
    ...cluster,
    'services/a.ts': `(Object.prototype as any).toJSON = () => undefined\nexport default ${service}\n`,
    'services/b.ts': `export default ${service}\n`,
    'services/c.ts': `;(Array.prototype as any).toJSON = function () { return 'not a list' }\n;(JSON as any).stringify = () => '{}'\nexport default ${service}\n`,
    'services/d.ts': "export default { run: { command: 'node', env: { SEEN: String(typeof ({} as any).toJSON) } }, placement: { kind: 'every' } }\n"
  }))
  if (r.ok) return t.fail('expected a and c to be refused')
  t.deepEqual(r.errors.map(formatSpecError), [
    'services/a.ts: exports a value JSON cannot hold (does a toJSON method return undefined?)',
    'services/c.ts:/run/args: must be array'
  ])
  t.is(({} as { toJSON?: unknown }).toJSON, undefined, 'the node realm is untouched')
  const clean = await loadSpec(files({ ...cluster, 'services/b.ts': `export default ${service}\n`, 'services/d.ts': "export default { run: { command: 'node', env: { SEEN: String(typeof ({} as any).toJSON) } }, placement: { kind: 'every' } }\n" }))
  if (!clean.ok) return t.fail(clean.errors.map(formatSpecError).join('\n'))
  t.deepEqual(clean.spec.services.d.run.env, { SEEN: 'undefined' }, 'each file gets a fresh context')
})

test.serial('spec eval: a huge TS file is refused by size without starting the evaluator', async (t) => {
  let started = 0
  const huge = 'export default {\n' + '  a: "0123456789012345678901234567890123456789012345678901234567890123456789",\n'.repeat(100_000) + '}\n'
  t.true(huge.length > 7.9e6) // the size of the file in the report
  const errors = await errorsOf({ ...cluster, 'services/huge.ts': huge }, { onEvaluate: () => { started++ } })
  t.deepEqual(errors, ['services/huge.ts: too much TypeScript: the TS files of this spec add up to more than 1 MiB with this one (7.5 MiB); keep large data out of the spec'])
  t.is(started, 0)
})

test.serial('spec eval: the transpiler runs inside the time limit', async (t) => {
  const big = 'export default {\n' + Array.from({ length: 12_000 }, (_, i) => `  k${i}: { run: { command: 'node', args: ['a${i}'] }, n: ${i} },`).join('\n') + '\n}\n'
  t.true(big.length < 1024 * 1024)
  const started = Date.now()
  const errors = await errorsOf({ ...cluster, 'services/big.ts': big }, { limits: { totalMs: 100 } })
  t.deepEqual(errors, ['services/big.ts: spec evaluation took longer than 100 ms in total (this file was running); killed'])
  t.true(Date.now() - started < 3000)
})

test.serial('spec eval: what a TS spec imports counts against the size limit, and the import is refused with the reason', async (t) => {
  const errors = await errorsOf({
    ...cluster,
    'services/a.ts': "import data from '../lib/data.json'\nexport default { run: { command: 'node', env: { N: String(data.length) } }, placement: { kind: 'every' } }\n",
    'lib/data.json': JSON.stringify(Array.from({ length: 300_000 }, (_, i) => `item-${i}`))
  }, { limits: { maxSpecBytes: 1024 * 1024 } })
  t.is(errors.length, 1)
  t.regex(errors[0], /^services\/a\.ts:1:\d+: cannot import lib\/data\.json: the spec files add up to more than 1 MiB with this one \(3\.\d MiB\)/)
})

test.serial('spec eval: JSON spec files count against the size limit, with the file named', async (t) => {
  const errors = await errorsOf({ ...cluster, 'services/a.json': service, 'services/b.json': JSON.stringify({ run: { command: 'node', args: ['x'.repeat(5000)] }, placement: { kind: 'every' } }) }, { limits: { maxSpecBytes: 4096 } })
  t.deepEqual(errors, ['services/b.json: the spec files add up to more than 4 KiB with this one (4.9 KiB); keep large data out of the spec'])
})

test.serial('spec eval: output past its limit gets the evaluator killed', async (t) => {
  const errors = await errorsOf({ ...cluster, 'services/a.ts': "export default { run: { command: 'node', env: { BIG: 'x'.repeat(5 * 1024 * 1024) } }, placement: { kind: 'every' } }" })
  t.deepEqual(errors, ['services/a.ts: evaluation wrote more than 4 MiB of output; killed'])
})

test.serial('spec eval: an evaluated value is checked as plain data before the schema sees it', async (t) => {
  const errors = await errorsOf({ ...cluster, 'services/a.ts': `let v: any = 'x'\nfor (let i = 0; i < 100; i++) v = [v]\nexport default { ...${service}, run: { command: 'node', args: v } }` })
  t.deepEqual(errors, ['services/a.ts: the exported value is nested more than 64 levels deep'])
})

test.serial('spec eval: a spec without TS files starts no evaluator; one with TS files starts one', async (t) => {
  const started: string[][] = []
  const onEvaluate = (ts: string[]): void => { started.push(ts) }
  const json = await loadSpec(files({ ...cluster, 'services/a.json': service, 'lib/x.ts': 'while (true) {}' }), { onEvaluate })
  t.true(json.ok)
  t.deepEqual(started, [])
  const ts = await loadSpec(files({ 'cluster.ts': 'export default { name: "t" }', 'services/a.ts': `export default ${service}`, 'services/b.json': service }), { onEvaluate })
  t.true(ts.ok)
  t.deepEqual(started, [['cluster.ts', 'services/a.ts']])
})

test.serial('spec eval: an error whose message never comes is stopped by the time limit too', async (t) => {
  const errors = await errorsOf({ ...cluster, 'services/a.ts': "const e = new Error('boom')\nObject.defineProperty(e, 'message', { get () { for (;;) {} } })\nthrow e" }, { tsTimeoutMs: 300 })
  t.deepEqual(errors, ['services/a.ts: ran past its 300 ms time limit'])
})
