/**
 * An operator's code that is JavaScript already runs without TypeScript (which costs a node
 * ~40 MiB and a second to load); TypeScript is loaded for code that needs it. Threads kept
 * for next evaluations end once unused for a while. A file of its own: nothing else in this
 * process may have loaded TypeScript first.
 */
import test from 'ava'
import { compile, evaluate, evaluateApart, idleThreads, keepThreadsFor } from '../../node/control/eval'
import { typescriptLoaded } from '../../node/typescript'
import { waitFor } from '../helpers/wait'

const view = { id: 'n1', members: {}, instances: [], process: { rssMb: 60 } }

test.serial('eval: JavaScript runs as it is, without loading TypeScript; TypeScript is loaded for code that needs it', (t) => {
  for (const code of ['node.process.rssMb', 'const x = 2; x * 21', 'await Promise.resolve(node.id)', 'const a = await Promise.resolve(1); return a + 1', '[1, 2].map((n) => n * 2)']) {
    t.is(compile(code).includes(code), true, code)
  }
  t.is(evaluate('const x = 2; x * 21', view).value, 42)
  t.is(evaluate('const a = await Promise.resolve(1); return a + 1', view).value, 2)
  t.false(typescriptLoaded(), 'plain JavaScript did not load TypeScript')
  t.is(evaluate('const x: number = 2; x * 21', view).value, 42)
  t.true(typescriptLoaded(), 'a type annotation did')
  t.regex(t.throws(() => evaluate('const = 1', view))?.message ?? '', /does not compile/)
})

test.serial('eval apart: a thread kept for the next evaluation ends once unused for the keep time', async (t) => {
  keepThreadsFor(300)
  t.is((await evaluateApart('node.id', view)).value, 'n1')
  t.is(idleThreads(), 1, 'kept for a next evaluation')
  t.is((await evaluateApart('node.id', view)).value, 'n1')
  t.is(idleThreads(), 1, 'the next evaluation took it and gave it back')
  await waitFor(() => idleThreads() === 0, { what: 'the idle thread to end', timeoutMs: 5000 })
  t.pass()
})
