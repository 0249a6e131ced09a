/**
 * `cluster.save(dir)`: the support bundle — the state as text and JSON, every node's
 * journal, node log and instance logs — and a line at the end saying what is where.
 */
import test from 'ava'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type { StateNow } from '../repl/journal'
import { specDirCluster } from './helpers/spec-dir'

test.serial('save: writes state.txt, state.json, every journal, node log and instance log, and says where', async (t) => {
  const s = await specDirCluster(t)
  await s.write('services/web.json', { run: { command: 'node', args: ['-e', "console.log('web says hello'); require('http').createServer((q, r) => r.end('hi')).listen(process.env.PORT)"] }, placement: { kind: 'every' } })
  for (const name of ['a', 'b', 'c']) await s.c.start({ name, image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.c.explainFailure(async () => await s.waitInstances('b', 'web', 3))
  const out = await mkdtemp(join(os.tmpdir(), 'origin-save-'))
  t.teardown(async () => await rm(out, { recursive: true, force: true }))
  const client = await s.c.client('b')
  const dir = join(out, 'bundle')
  const report = await client.save(dir)
  t.deepEqual(report.problems, [])
  t.regex(String(report), new RegExp(`^saved to ${dir}: state.txt .*journal/ \\(3 nodes.*logs/.*for 3 nodes.*for 1 services`))

  const text = await readFile(join(dir, 'state.txt'), 'utf8')
  for (const n of ['a', 'b', 'c']) t.true(text.includes(s.c.node(n).address), `state.txt names ${n}`)
  t.regex(text, /web \(every\)/)
  const json = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as StateNow
  t.is(json.kind, 'now')
  t.deepEqual(json.nodes.map((n) => n.id), ['a', 'b', 'c'])
  t.deepEqual((await readdir(join(dir, 'journal'))).sort(), ['a.jsonl', 'b.jsonl', 'c.jsonl', 'events.txt'])
  for (const n of ['a', 'b', 'c']) {
    const lines = (await readFile(join(dir, 'journal', `${n}.jsonl`), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { node: string, kind: string })
    t.true(lines.length > 0 && lines.every((e) => e.node === n), `journal of ${n}`)
    t.true(lines.some((e) => e.kind === 'spec-applied'))
    t.regex(await readFile(join(dir, 'logs', n, 'node.log'), 'utf8'), new RegExp(`${n}: node ${n} up at`))
    t.regex(await readFile(join(dir, 'logs', 'web', n, `web@${n}.log`), 'utf8'), /web says hello/)
  }
  t.regex(await readFile(join(dir, 'journal', 'events.txt'), 'utf8'), /web@a ready at/)
})
