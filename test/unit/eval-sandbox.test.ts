import test from 'ava'
import { endIdleThreads, evaluate, evaluateApart } from '../../node/control/eval'

const view = { id: 'n1', members: { n1: { id: 'n1' }, n2: { id: 'n2' } }, instances: [] }
const code = (err: unknown): string | undefined => (err as { code?: string }).code
const run = (src: string, timeoutMs = 300): unknown => evaluate(src, view, { timeoutMs }).value

test('eval: the value of an expression, of statements (the last one), and of awaited code', (t) => {
  t.is(run('Object.keys(node.members).length'), 2)
  t.is(run('const x: number = 2; x * 21'), 42)
  t.is(run('await Promise.resolve(node.id)'), 'n1')
  t.is(run('const a = await Promise.resolve(1); return a + 1'), 2)
  t.is(run('undefined'), null)
})

test('eval: values come back as JSON data: bigint as text, functions named, cycles cut, maps and sets as objects and arrays', (t) => {
  t.is(run('1n << 70n'), '1180591620717411303424')
  t.deepEqual(run('({ f () {}, u: undefined, m: new Map([["k", 1]]), s: new Set([1, 2]) })'), { f: '[function f]', m: { k: 1 }, s: [1, 2] })
  t.deepEqual(run('const o: any = { a: 1 }; o.self = o; o'), { a: 1, self: '[circular]' })
})

test('eval: the code reaches nothing of the node: no require, process, timers, eval, and node is frozen', (t) => {
  t.deepEqual(run('[typeof require, typeof process, typeof setTimeout, typeof globalThis.fetch]'), ['undefined', 'undefined', 'undefined', 'undefined'])
  t.regex(t.throws(() => run('node.constructor.constructor("return process")()'))!.message, /Code generation from strings disallowed/)
  t.is(run('"use strict"; try { (node as any).id = "x" } catch (e) { String(e instanceof TypeError) }'), 'true')
  t.is(run('node.id'), 'n1')
})

test('eval: errors, code that does not compile, runaway loops (sync and async), promises that never settle, values too large', (t) => {
  t.regex(t.throws(() => run('throw new RangeError("no")'))!.message, /^RangeError: no$/)
  t.regex(t.throws(() => run('const = 1'))!.message, /does not compile/)
  const t0 = Date.now()
  t.is(code(t.throws(() => run('while (true) {}', 100))), 'E_TIMEOUT')
  t.is(code(t.throws(() => run('for (;;) await 0', 100))), 'E_TIMEOUT')
  t.true(Date.now() - t0 < 2000)
  t.is(code(t.throws(() => run('await new Promise(() => {})'))), 'E_TIMEOUT')
  t.is(code(t.throws(() => evaluate('"x".repeat(2000)', view, { maxBytes: 1000 }))), 'E_FRAME_TOO_LARGE')
})

test('eval apart: on its own thread the event loop goes on, memory hogs end their thread, and nothing leaks to the next evaluation', async (t) => {
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 10)
  const loop = await t.throwsAsync(evaluateApart('while (true) {}', view, { timeoutMs: 500 }))
  clearInterval(timer)
  t.is(code(loop), 'E_TIMEOUT')
  t.true(ticks >= 20, `the event loop ran ${ticks} times meanwhile`)
  t.regex((await t.throwsAsync(evaluateApart('const a: number[][] = []; for (;;) a.push(new Array(1e5).fill(1))', view, { timeoutMs: 5000 })))!.message, /more than the 128 MiB/)
  t.is((await evaluateApart('(globalThis as any).leak = 1; 2', view)).value, 2)
  t.is((await evaluateApart('typeof (globalThis as any).leak', view)).value, 'undefined')
  t.deepEqual(await Promise.all([1, 2, 3].map(async (i) => (await evaluateApart(`${i} * 2`, view)).value)), [2, 4, 6])
  await endIdleThreads()
})
