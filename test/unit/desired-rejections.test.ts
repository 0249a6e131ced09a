import test from 'ava'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatSpecError, type SpecError } from '../../node/desired/load'
import { problemFromLine, problemLine } from '../../node/desired/problems'
import { RejectedVersions } from '../../node/desired/rejections'

async function tempFile (t: { teardown (fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'origin-desired-rejections-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return join(dir, 'spec', 'rejected.json')
}

const structured: SpecError[] = [
  { file: 'services/web.json', path: '/placement/count', message: 'must be integer' },
  { file: 'cluster.json', line: 3, column: 14, message: 'invalid JSON: Unexpected token } in JSON' },
  { file: 'services/api.ts', line: 12, column: 5, path: '/run/command', message: 'must be string: got 42' },
  { file: 'services/bomb.ts', message: 'evaluation used more than 256 MiB of memory; killed' },
  { file: '', message: 'commit 0123456789ab: not signed by an allowed signer' }
]

test('desired rejections: structured problems (file, line, column, path, message) come back the same after a restart', async (t) => {
  const file = await tempFile(t)
  const before = new RejectedVersions(file, 'limits')
  t.is(await before.add('c0ffee', structured, 1000), undefined)
  const after = new RejectedVersions(file, 'limits')
  t.is(await after.load(), undefined)
  const back = after.get('c0ffee')
  t.deepEqual(back?.problems, structured)
  t.deepEqual(back?.errors, structured.map(problemLine), 'the lines are the problems formatted')
  const stored = JSON.parse(await readFile(file, 'utf8')) as { rejected: Array<Record<string, unknown>> }
  t.deepEqual(stored.rejected[0].problems, structured, 'the file holds the problems as data')
})

test('desired rejections: a file from before problems were kept (lines only) is read, each line parsed back into its problem where it formats the same', async (t) => {
  const file = await tempFile(t)
  await mkdir(join(file, '..'), { recursive: true })
  const lines = structured.map(problemLine)
  await writeFile(file, JSON.stringify({ rejected: [{ version: 'old', key: 'limits', errors: lines, at: 7 }] }))
  const r = new RejectedVersions(file, 'limits')
  t.is(await r.load(), undefined)
  t.deepEqual(r.get('old'), { version: 'old', key: 'limits', errors: lines, problems: structured, at: 7 })
  // Written again (another version added): the old entry is kept, now with its problems.
  await r.add('new', [{ file: 'x.json', message: 'bad' }], 8)
  const again = new RejectedVersions(file, 'limits')
  await again.load()
  t.deepEqual(again.get('old')?.problems, structured)
})

test('desired rejections: entries with malformed problems, or with neither problems nor lines, are dropped', async (t) => {
  const file = await tempFile(t)
  await mkdir(join(file, '..'), { recursive: true })
  await writeFile(file, JSON.stringify({
    rejected: [
      { version: 'a', key: 'k', problems: [{ file: 'x.json', line: 'three', message: 'm' }], at: 0 },
      { version: 'b', key: 'k', problems: [{ message: 'no file' }], at: 0 },
      { version: 'c', key: 'k', at: 0 },
      { version: 'd', key: 'k', problems: [{ file: 'x.json', message: 'm' }], errors: [42], at: 0 },
      { version: 'e', key: 'k', problems: [{ file: 'x.json', line: 1, message: 'fine' }], at: 0 }
    ]
  }))
  const r = new RejectedVersions(file, 'k')
  t.is(await r.load(), undefined)
  t.deepEqual(['a', 'b', 'c', 'd', 'e'].map((v) => r.get(v) !== undefined), [false, false, false, false, true])
})

test('desired problems: a line that does not format back the same stays a problem of no file, so what a person reads never changes', (t) => {
  const kept = [
    'commit 0123456789ab is over the 5.0 MiB limit (maxCommitMb in cluster.json); largest files: big.bin (6.0 MiB)',
    'services/web.json:007: a line number with a leading zero',
    'services/web.json: ',
    'evaluator: cannot start node',
    'just words'
  ]
  for (const line of kept) {
    t.deepEqual(problemFromLine(line), { file: '', message: line })
    t.is(problemLine(problemFromLine(line)), line)
  }
  t.deepEqual(problemFromLine('services/web.json:/ports/0/name: must match "^[a-z]+$": got a:b'),
    { file: 'services/web.json', path: '/ports/0/name', message: 'must match "^[a-z]+$": got a:b' })
  const multiline = { file: 'services/x.ts', line: 2, message: 'first\nsecond' }
  t.deepEqual(problemFromLine(formatSpecError(multiline)), multiline)
})
