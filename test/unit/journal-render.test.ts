/**
 * The journal in the REPL: events print one line each in time order, and the live lines
 * say a spec version once (whichever node says it first) and each rollout step once.
 */
import test from 'ava'
import { inspect } from 'node:util'
import { describeEvent, type JournalBody, type JournalEvent } from '../../node/journal'
import { EventList, LiveLines } from '../../repl/journal'

let seq = 0
const ev = (node: string, at: number, body: JournalBody): JournalEvent => ({ ...body, node, at, seq: ++seq, text: describeEvent(body) } as JournalEvent)
const applied: JournalBody = { kind: 'spec-applied', version: 'abc', summary: 'abc "more memory"', services: ['web'] }
const waits: JournalBody = { kind: 'rollout', instance: 'web-1', service: 'web', reason: 'new version v2 waits for web-0 to be ready on it' }

test('journal in the REPL: events print one line each, and unreachable nodes say why', (t) => {
  const l = EventList.fromView({ answeredBy: 'a', events: [ev('a', 0, applied), ev('b', 1000, { kind: 'member', member: 'c', status: 'dead', from: 'suspect', facts: { address: 'c:7400' } })], unreachable: [{ node: 'c', reason: 'dead: its journal stays on its disk' }] })
  t.is(inspect(l), [
    '1970-01-01T00:00:00.000Z  a         spec applied: abc "more memory" (1 services)',
    '1970-01-01T00:00:01.000Z  b         member c is dead (was suspect)',
    '(c: journal not read: dead: its journal stays on its disk)'
  ].join('\n'))
  t.is(JSON.parse(JSON.stringify(l)).length, 2, 'as JSON: the entries')
})

test('journal in the REPL: live lines say each spec version and each rollout step once', (t) => {
  const live = new LiveLines()
  const first = live.lines([ev('a', 0, applied), ev('b', 5, applied), ev('b', 6, waits)])
  t.is(first.length, 2)
  t.regex(first[0]!, /\] spec applied: abc/)
  t.regex(first[1]!, /b\] web-1 waits: new version v2/)
  t.deepEqual(live.lines([ev('c', 7, applied), ev('b', 6, waits), ev('a', 8, { kind: 'member', member: 'c', status: 'dead', facts: { address: 'c' } })]), [], 'nothing twice, no member lines')
  t.is(live.lines([ev('c', 9, { kind: 'spec-rejected', version: 'def', summary: 'def', errors: ['services/web.json: bad'] })]).length, 1)
})
