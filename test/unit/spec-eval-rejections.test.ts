import test from 'ava'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RejectedVersions } from '../../node/desired/rejections'

async function tempFile (t: { teardown (fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'origin-rejected-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return join(dir, 'spec', 'rejected.json')
}

test('spec rejections: a rejection is remembered across a restart, under the same limits only', async (t) => {
  const file = await tempFile(t)
  const first = new RejectedVersions(file, 'limits-a')
  t.is(await first.load(), undefined, 'no file yet is no problem')
  const bomb = { file: 'services/bomb.ts', message: 'evaluation used more than 256 MiB of memory; killed' }
  t.is(await first.add('c0ffee', [bomb], 1000), undefined)
  const again = new RejectedVersions(file, 'limits-a')
  t.is(await again.load(), undefined)
  t.deepEqual(again.get('c0ffee'), { version: 'c0ffee', key: 'limits-a', errors: ['services/bomb.ts: evaluation used more than 256 MiB of memory; killed'], problems: [bomb], at: 1000 })
  t.is(again.get('other'), undefined)
  const raised = new RejectedVersions(file, 'limits-b')
  await raised.load()
  t.is(raised.get('c0ffee'), undefined, 'with other limits the commit gets another look')
})

test('spec rejections: the list is bounded, the oldest go first, and long errors are cut', async (t) => {
  const file = await tempFile(t)
  const r = new RejectedVersions(file, 'k', 3)
  for (let i = 0; i < 5; i++) await r.add(`v${i}`, [{ file: '', message: 'x'.repeat(5000) }], i)
  const back = new RejectedVersions(file, 'k', 3)
  await back.load()
  t.deepEqual(['v0', 'v1', 'v2', 'v3', 'v4'].map((v) => back.get(v) !== undefined), [false, false, true, true, true])
  t.true((back.get('v4')?.errors[0].length ?? 0) < 2100)
  t.true((back.get('v4')?.problems[0].message.length ?? 0) < 2100)
  t.true((await readFile(file, 'utf8')).length < 10_000)
})

test('spec rejections: a damaged file is reported and ignored, never fatal', async (t) => {
  const file = await tempFile(t)
  await mkdir(join(file, '..'), { recursive: true })
  await writeFile(file, '{ not json')
  const r = new RejectedVersions(file, 'k')
  t.regex(await r.load() ?? '', /^ignoring .*rejected\.json/)
  t.is(r.get('anything'), undefined)
  await writeFile(file, JSON.stringify({ rejected: [{ version: 'v', key: 'k', errors: [1], at: 0 }, { version: 'w', key: 'k', errors: ['ok'], at: 0 }] }))
  const partial = new RejectedVersions(file, 'k')
  t.is(await partial.load(), undefined)
  t.is(partial.get('v'), undefined, 'a malformed entry is dropped')
  t.truthy(partial.get('w'))
})
