import test from 'ava'
import { chmod } from 'node:fs/promises'
import { issueOperator } from '../node/keys'
import type { EachResult } from '../node/control/actions'
import { connectCluster } from '../repl/client'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

const web = {
  run: { command: 'node', args: ['-e', "require('http').createServer((q, s) => s.end('hi')).listen(process.env.PORT)"] },
  placement: { kind: 'replicas', count: 2 }
}

const code = (err: unknown): string | undefined => (err as { code?: string }).code

test.serial('eval: on one node and on each, values, errors, the time limit, refused for an operator not allowed, journaled', async (t) => {
  const s = await specDirCluster(t, { operators: { eval: ['op'] } })
  await chmod(s.dir, 0o755) // the service runs as its own user
  await s.write('services/web.json', web)
  for (const name of ['a', 'b', 'c']) await s.c.start({ name, image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.c.explainFailure(async () => await s.waitInstances('a', 'web', 2))
  const cluster = await s.c.client('a')

  // Values: the node's own facts, typed code, await.
  t.is(await cluster.on('b').eval('node.id'), 'b')
  t.is(await cluster.on('c').eval('const n: number = Object.keys(node.members).length; n * 10'), 30)
  t.is(await cluster.on('a').eval('await Promise.resolve(node.spec.cluster.name)'), 'test')
  t.deepEqual(await cluster.on('b').eval('[typeof require, typeof process, typeof setTimeout, typeof fetch]'), ['undefined', 'undefined', 'undefined', 'undefined'])
  t.true(((await cluster.on('b').eval('node.process.rssMb')) as number) > 10)
  // Summed over the nodes, the two web instances (once placement has settled: on a loaded
  // machine one may still be stopping where it was first placed).
  const each = await waitFor(async () => {
    const e = await cluster.each('node.instances.filter((i) => i.service === "web").length')
    return e.reduce((n, r) => n + ('value' in r ? r.value as number : 0), 0) === 2 ? e : undefined
  }, { what: 'two web instances over the nodes' })
  t.deepEqual(each.map((r) => r.node), ['a', 'b', 'c'])

  // Errors: thrown on the node, and code that does not compile.
  const thrown = await t.throwsAsync(cluster.on('c').eval('throw new RangeError("no such thing")'))
  t.regex(thrown!.message, /RangeError: no such thing/)
  const bad = await t.throwsAsync(cluster.on('c').eval('const = 1'))
  t.regex(bad!.message, /does not compile/)
  t.true(((await cluster.on('b').eval('node.id = "x"; node.id')) as string) === 'b', 'node is read-only')

  // A runaway loop is stopped by the time limit; the node still answers, and stays alive to the others.
  const t0 = Date.now()
  const loop = await t.throwsAsync(cluster.on('b').eval('while (true) {}', { timeoutMs: 300 }))
  t.is(code(loop), 'E_TIMEOUT')
  t.regex(loop!.message, /300 ms time limit/)
  const stuck = await t.throwsAsync(cluster.on('b').eval('(async () => { for (;;) await 0 })()', { timeoutMs: 300 }))
  t.is(code(stuck), 'E_TIMEOUT')
  const hog = await t.throwsAsync(cluster.on('b').eval('const a: number[][] = []; for (;;) a.push(new Array(1e5).fill(1))', { timeoutMs: 5000 }))
  t.regex(hog!.message, /more than the 128 MiB/)
  t.true(Date.now() - t0 < 10_000)
  t.is(await cluster.on('b').eval('node.id'), 'b')
  const mixed: EachResult[] = await cluster.each('if (node.id === "c") throw new Error("c says no"); node.id')
  t.deepEqual(mixed.map((r) => 'value' in r ? r.value : r.error.message), ['a', 'b', 'Error: c says no'])
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })

  // Figures: round trip on one node (relayed) and on each.
  const rounds = 20
  let t1 = performance.now()
  for (let i = 0; i < rounds; i++) await cluster.on('b').eval('node.id')
  const oneMs = (performance.now() - t1) / rounds
  t1 = performance.now()
  for (let i = 0; i < rounds; i++) await cluster.each('node.id')
  const eachMs = (performance.now() - t1) / rounds
  t.log(`eval round trip: on one node ${oneMs.toFixed(1)} ms, on each of 3 ${eachMs.toFixed(1)} ms (mean of ${rounds})`)

  // An operator the spec does not name is refused, on one node and on each.
  await issueOperator({ keys: s.c.keys, name: 'mallory' }).catch(() => {})
  const mallory = await connectCluster({ keys: s.c.keys, as: 'mallory', address: s.c.node('a').address })
  t.teardown(() => mallory.close())
  t.is((await mallory.nodes()).length, 3, 'mallory is an operator')
  const refused = await t.throwsAsync(mallory.on('b').eval('node.id'))
  t.is(code(refused), 'E_FORBIDDEN_ROLE')
  t.regex(refused!.message, /mallory may not evaluate/)
  t.is(code(await t.throwsAsync(mallory.each('node.id'))), 'E_FORBIDDEN_ROLE')

  // Journaled where it ran, with the operator and the code; the refusal too.
  const events = await waitFor(async () => {
    const es = await cluster.events({ since: '10m' })
    return es!.some((e) => e.kind === 'operator' && e.operator === 'mallory') ? es : undefined
  }, { what: 'the refusal in the journal' })
  const evals = events!.filter((e) => e.kind === 'operator' && e.action === 'eval')
  t.true(evals.some((e) => e.node === 'b' && e.kind === 'operator' && e.operator === 'op' && e.detail === 'while (true) {}'))
  t.true(evals.some((e) => e.node === 'c' && e.kind === 'operator' && e.detail === 'throw new RangeError("no such thing")'))
  t.true(events!.some((e) => e.kind === 'operator' && e.operator === 'mallory' && e.action === 'eval refused'))
  t.false(evals.some((e) => e.kind === 'operator' && e.operator === 'mallory'))
})
