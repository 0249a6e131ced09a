/**
 * build/bundle.ts `oneByte`: the node's bundle is kept to characters V8 can hold one byte
 * each, without changing what the code means.
 */
import test from 'ava'
import vm from 'node:vm'
import { oneByte } from '../../build/bundle'

test('bundle: characters above U+00FF become escapes that mean the same in strings and regular expressions', (t) => {
  const code = 'const s = "x\u{1F600}\uffff é"; const r = /[\ud800-\uffff]/; [s, r.test("\ue000"), r.test("a")]'
  const escaped = oneByte(code)
  t.false(/[\u0100-\uffff]/.test(escaped), 'no character needs two bytes')
  t.true(escaped.includes('é'), 'Latin-1 stays as it is')
  t.deepEqual(vm.runInNewContext(escaped), vm.runInNewContext(code))
})
