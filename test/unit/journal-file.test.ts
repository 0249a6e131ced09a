/**
 * The journal layer on its own, with the other layers as event emitters: it records what
 * they say (members by status change only, instances by state change only), operators'
 * actions, rotates, and a new journal on the same data dir reads what the last one wrote.
 */
import test from 'ava'
import { EventEmitter } from 'node:events'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { realClock } from '../../node/clock'
import { journal } from '../../node/journal'
import { silentLogger } from '../../node/log'

/** An emitter the test drives with hand-made payloads (the layers' event maps are checked where they are emitted). */
const loose = (): EventEmitter<any> => new EventEmitter()

function layers (table: Record<string, { status: string }>) {
  const membership = { id: 'a', events: loose(), table: () => Object.fromEntries(Object.entries(table).map(([id, m]) => [id, { id, address: `${id}:7400`, status: m.status, characteristics: { cpus: 2, memoryMb: 1024, arch: 'x64', labels: {} } }])) }
  return { membership: membership as unknown as { id: string, events: EventEmitter<any>, table: () => never }, hubs: { events: loose() }, spec: { events: loose() }, supervisor: { events: loose() }, log: silentLogger }
}

test('journal: records layers\' events once per change, operators, and survives a restart', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-journal-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const table: Record<string, { status: string }> = { a: { status: 'alive' } }
  const l = layers(table)
  const j = journal({ dataDir: dir })(l)
  await j.start()
  table.b = { status: 'alive' }
  l.membership.events.emit('change')
  l.membership.events.emit('change') // a heartbeat: nothing new
  table.b.status = 'dead'
  l.membership.events.emit('change')
  const st = { instance: 'web-1', service: 'web', version: 'v1', address: '127.0.0.1:3000' }
  l.supervisor.events.emit('instance', { ...st, status: { state: 'starting', restarts: 0 } })
  l.supervisor.events.emit('instance', { ...st, status: { state: 'starting', restarts: 0, pid: 42 } }) // a sample, not an event
  l.supervisor.events.emit('instance', { ...st, status: { state: 'backoff', restarts: 1, reason: 'exited with code 3' } })
  l.spec.events.emit('rejected', { version: 'f'.repeat(40), info: { message: 'bad' }, errors: ['services/x.json: bad'], at: 1 })
  j.record({ kind: 'operator', operator: 'alice', action: 'forget', detail: 'b' })
  await j.stop()

  const again = journal({ dataDir: dir })(layers(table))
  const read = await again.read()
  t.deepEqual(read.map((e) => e.text), [
    'node started',
    'member a joined (a:7400, alive)',
    'member b joined (b:7400, alive)',
    'member b is dead (was alive)',
    'web-1 starting (version v1)',
    'web-1 backoff: exited with code 3 (version v1, 1 restarts)',
    'spec rejected: ffffffffff "bad": services/x.json: bad',
    'operator alice: forget b',
    'node stopped'
  ])
  t.true(read.every((e, i) => i === 0 || e.at >= read[i - 1]!.at))
  t.deepEqual((await again.read({ service: 'web' })).map((e) => e.kind), ['instance', 'instance'])
  t.is((await again.read({ limit: 2 }))[0]!.kind, 'operator')
})

test('journal: rotates like node.log and reads the parts in order', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-journal-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  let clock = 1_000_000
  const j = journal({ dataDir: dir, maxBytes: 2000, keep: 3 })({ ...layers({ a: { status: 'alive' } }), clock: realClock(() => ++clock) })
  for (let i = 0; i < 100; i++) j.record({ kind: 'operator', operator: 'op', action: 'sync', detail: String(i) })
  const parts = (await readdir(dir)).filter((n) => n.startsWith('journal.jsonl')).sort()
  t.deepEqual(parts, ['journal.jsonl', 'journal.jsonl.1', 'journal.jsonl.2', 'journal.jsonl.3'])
  const read = await j.read()
  t.true(read.length < 100 && read.length > 20)
  const last = read.at(-1)!
  t.is(last.kind === 'operator' ? last.detail : '', '99')
  t.deepEqual(read.map((e) => e.seq), [...read.map((e) => e.seq)].sort((x, y) => x - y))
  // Since a time: the same entries as filtering everything, across the parts.
  for (const cut of [read[0]!.at, read[5]!.at, read[read.length - 3]!.at, clock + 1]) {
    t.deepEqual((await j.read({ since: cut })).map((e) => e.seq), read.filter((e) => e.at >= cut).map((e) => e.seq))
  }
})
