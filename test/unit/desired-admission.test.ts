import test from 'ava'
import { generateKeyPairSync } from 'node:crypto'
import { judge, signatureProblems, type Candidate, type JudgeOptions } from '../../node/desired/admission'
import { specLimits } from '../../node/desired/limits'
import type { RememberedRejection } from '../../node/desired/rejections'

function candidate (files: Record<string, unknown>, version = 'a'.repeat(40)): Candidate {
  const map = new Map(Object.entries(files).map(([path, v]) => [path, Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))]))
  return { version, files: map, info: { dir: '/spec' }, modes: new Map() }
}

const cluster = { name: 'prod', minNodes: 1 }
const web = { run: { command: 'true' }, placement: { kind: 'replicas', count: 2 } }
const evaluated: string[][] = []
const options: JudgeOptions = { limits: specLimits({}), cluster: 'prod', onEvaluate: (ts) => { evaluated.push(ts) } }

test('desired admission: a valid spec of this cluster is applied', async (t) => {
  const d = await judge(candidate({ 'cluster.json': cluster, 'services/web.json': web }), options)
  if (d.verdict !== 'apply') { t.fail(`not applied: ${JSON.stringify(d)}`); return }
  t.deepEqual(Object.keys(d.spec.services), ['web'])
  t.is(d.spec.cluster.name, 'prod')
})

test('desired admission: a bad service file is rejected with its problems as data, and the verdict is to be remembered', async (t) => {
  const d = await judge(candidate({ 'cluster.json': cluster, 'services/web.json': { ...web, placement: { kind: 'replicas', count: 'two' } } }), options)
  if (d.verdict !== 'reject') { t.fail(`not rejected: ${JSON.stringify(d)}`); return }
  t.true(d.remember)
  t.like(d.problems.find((p) => p.file === 'services/web.json'), { file: 'services/web.json', path: '/placement/count' })
})

test('desired admission: JSON that does not parse is rejected naming its file, line and column', async (t) => {
  // The comma after "prod" is missing: the parser stops at the next key.
  const d = await judge(candidate({ 'cluster.json': '{\n  "name": "prod"\n  "minNodes": 1\n}' }), options)
  if (d.verdict !== 'reject') { t.fail(`not rejected: ${JSON.stringify(d)}`); return }
  t.like(d.problems[0], { file: 'cluster.json', line: 3, column: 3 })
})

test('desired admission: a spec that names another cluster is refused, naming cluster.json', async (t) => {
  const d = await judge(candidate({ 'cluster.json': { ...cluster, name: 'staging' }, 'services/web.json': web }), options)
  t.deepEqual(d, { verdict: 'reject', remember: true, problems: [{ file: 'cluster.json', message: 'name "staging" is not this cluster ("prod")' }] })
})

test('desired admission: a remembered rejection is the verdict, with its problems, and nothing is evaluated', async (t) => {
  const remembered: RememberedRejection = { version: 'b'.repeat(40), key: 'k', errors: ['services/x.ts: killed'], problems: [{ file: 'services/x.ts', message: 'killed' }], at: 5 }
  const before = evaluated.length
  // Files that would be applied, and a TS file that would be evaluated: memory wins over both.
  const d = await judge(candidate({ 'cluster.json': cluster, 'services/x.ts': 'export default { run: { command: "true" } }' }, remembered.version), { ...options, remembered })
  t.deepEqual(d, { verdict: 'reject', remember: false, problems: remembered.problems, remembered })
  t.is(evaluated.length, before)
})

test('desired admission: with signers, an unsigned commit is a problem of no file naming the commit; without signers nothing is checked', (t) => {
  const { publicKey } = generateKeyPairSync('ed25519')
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url')
  const str = (b: Buffer): Buffer => { const length = Buffer.alloc(4); length.writeUInt32BE(b.length); return Buffer.concat([length, b]) }
  const signer = `ops@example.com ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')}`
  const commit = 'c'.repeat(40)
  const unsigned = `tree ${'d'.repeat(40)}\nauthor A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\n\nchange\n`
  t.deepEqual(signatureProblems(commit, unsigned, undefined), [])
  t.deepEqual(signatureProblems(commit, unsigned, []), [])
  t.deepEqual(signatureProblems(commit, unsigned, [signer]), [{ file: '', message: 'commit cccccccccccc: commit is not signed' }])
})
