/**
 * Directory mode's watcher (node/desired/watch.ts): a change is taken once the debounce
 * has passed on the node's clock, here a virtual one, so the debounce is seen to wait for
 * the clock and not for real time.
 */
import test from 'ava'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type { Clock } from '../../node/clock'
import { VirtualClock } from '../../node/clock/virtual'
import { silentLogger } from '../../node/log'
import { watchSpecDir } from '../../node/desired/watch'
import type { SpecFiles } from '../../node/desired/types'
import { waitFor } from '../helpers/wait'

test('desired watch: a changed file is taken when the debounce has passed on the node clock, not before', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-watch-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'cluster.json'), '{"name":"a"}')
  const virtual = new VirtualClock(1_000_000)
  // The virtual clock, with the delays the watcher asks of it written down: that is how
  // the test knows the file watcher has seen the change.
  const asked: number[] = []
  const clock: Clock = { now: () => virtual.now(), after: (ms, fn) => { asked.push(ms); return virtual.after(ms, fn) }, every: (ms, fn) => virtual.every(ms, fn) }
  const taken: Array<{ files: SpecFiles, version: string }> = []
  const stop = await watchSpecDir(dir, (files, version) => taken.push({ files, version }), silentLogger, 5000, clock)
  t.teardown(stop)
  // The first load is not debounced.
  await waitFor(() => taken.length === 1, { what: 'the first load' })
  t.is(taken[0].files.get('cluster.json')?.toString(), '{"name":"a"}')

  await writeFile(join(dir, 'cluster.json'), '{"name":"b"}')
  await waitFor(() => asked.length > 0, { what: 'the watcher to see the change' })
  t.deepEqual([...new Set(asked)], [5000], 'the debounce is set on the clock')
  const seen = virtual.now()
  await virtual.runUntil(seen + 4999)
  t.is(taken.length, 1, 'nothing is taken within the debounce')
  await virtual.runUntil(seen + 5000)
  await waitFor(() => taken.length === 2, { what: 'the change to be taken' })
  t.is(taken[1].files.get('cluster.json')?.toString(), '{"name":"b"}')
  t.not(taken[1].version, taken[0].version)
})
