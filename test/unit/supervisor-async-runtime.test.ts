/**
 * A runtime may take its time to create a run (a container engine does): the lifecycle
 * must still do what was asked meanwhile. Here the real process runtime, behind a start
 * that waits until the test opens a gate, stands in for such a runtime; no Docker needed.
 */
import test from 'ava'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../../node/clock/virtual'
import type { Logger } from '../../node/log'
import type { RunHandle, Runtime } from '../../node/runtime/contract'
import { processRuntime } from '../../node/runtime/process'
import { probeContainment, type Containment } from '../../node/supervisor/contain'
import { readLog } from '../../node/logfile'
import { ManagedProcess, type ManagedProcessOptions } from '../../node/supervisor/process'
import { waitFor } from '../helpers/wait'

const sleeper = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'procs', 'sleeper.js')
const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet }

let containment: Containment
let dir = ''
test.before(async () => {
  containment = await probeContainment()
  dir = await mkdtemp(join(os.tmpdir(), 'origin-async-runtime-'))
})
test.after.always(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

/** The process runtime, started only once `open()` is called; `made` holds the handles it made. */
function gatedRuntime (fail?: string): { runtime: Runtime, open: () => void, made: RunHandle[] } {
  let open = (): void => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  const real = processRuntime({ containment })
  const made: RunHandle[] = []
  const runtime: Runtime = {
    kind: 'gated',
    start: async (req) => {
      await gate
      if (fail !== undefined) throw new Error(fail)
      const h = await real.start(req)
      made.push(h)
      return h
    }
  }
  return { runtime, open, made }
}

let n = 0
function managed (t: { teardown: (fn: () => Promise<void>) => void }, runtime: Runtime, o: Partial<ManagedProcessOptions> = {}): { p: ManagedProcess, logPath: string } {
  const id = `gated-${++n}`
  const logPath = join(dir, 'logs', `${id}.log`)
  const p = new ManagedProcess({ id, command: process.execPath, args: [sleeper], env: {}, cwd: dir, logPath, log: quiet, restart: { policy: 'always' }, stopGraceMs: 2000, containment, runtime, ...o })
  t.teardown(async () => { await p.stop() })
  return { p, logPath }
}

test('async runtime: a stop that comes while the run is being created ends the run as soon as it exists', async (t) => {
  const g = gatedRuntime()
  const { p, logPath } = managed(t, g.runtime)
  p.start()
  t.is(p.status().state, 'starting')
  t.is(p.status().reason, 'starting a gated run')
  const stopped = p.stop()
  t.is(p.status().state, 'stopping')
  g.open()
  await stopped
  t.is(p.status().state, 'stopped')
  t.is(g.made.length, 1, 'the run was created, then ended')
  const pid = g.made[0].pid
  if (pid !== undefined) await waitFor(() => !existsSync(`/proc/${pid}`), { what: `pid ${pid} gone` })
  t.regex(await readLog(logPath), /origin stopped/)
})

test('async runtime: paused while being created, the run is paused as soon as it exists, and resumes as started', async (t) => {
  const g = gatedRuntime()
  const { p, logPath } = managed(t, g.runtime)
  p.start()
  p.pause()
  t.is(p.status().state, 'paused')
  g.open()
  await waitFor(async () => /paused \(SIGSTOP to /.test(await readLog(logPath)), { what: 'the new run paused' })
  t.is(p.status().state, 'paused')
  t.not(p.status().pid, undefined)
  p.resume()
  t.is(p.status().state, 'ready', 'back to the state the run reached before it was paused')
  t.regex(await readLog(logPath), /origin paused while starting; the run is paused as soon as it exists/)
  t.regex(await readLog(logPath), /origin resumed \(SIGCONT to /)
})

test('async runtime: a creation that fails is a failed start, restarted by policy after its backoff on the clock', async (t) => {
  const g = gatedRuntime('the engine went away')
  const clock = new VirtualClock(5_000_000)
  const { p } = managed(t, g.runtime, { restart: { policy: 'always', backoffMs: 10_000 }, clock })
  p.start()
  g.open()
  await waitFor(() => p.status().state === 'backoff', { what: 'backoff after the failed creation' })
  t.is(p.status().reason, 'could not start: the engine went away; restarting in 10.0 s (attempt 1)')
  t.is(p.status().restarts, 0)
  await clock.runUntil(5_010_000)
  // The gate is open: the second creation fails at once, and waits twice as long.
  await waitFor(() => p.status().restarts === 1 && p.status().state === 'backoff', { what: 'the second failed creation' })
  t.regex(p.status().reason ?? '', /restarting in 20\.0 s \(attempt 2\)/)
})
