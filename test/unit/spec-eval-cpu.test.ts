/**
 * Spec evaluation limits count the evaluator's CPU time, not real time: on a machine whose
 * CPUs are all busy (stress-ng, at the priority of the node's own programs), a valid spec
 * is accepted even though the evaluator, at a lower priority, takes far longer than the
 * limits in real time. Skipped with a message where stress-ng is missing.
 */
import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { formatSpecError, loadSpec, type SpecFiles } from '../../node/desired/load'

const STRESS = '/usr/bin/stress-ng'
const it = existsSync(STRESS) ? test.serial : test.serial.skip
if (!existsSync(STRESS)) console.log(`spec-eval-cpu: skipped: no ${STRESS} (apt-get install stress-ng)`)

function files (entries: Record<string, string>): SpecFiles {
  return new Map(Object.entries(entries).map(([path, text]) => [path, Buffer.from(text)]))
}

const service = JSON.stringify({ run: { command: 'node', args: ['x.js'] }, placement: { kind: 'every' } })

it('spec eval: on a machine with every CPU busy, a valid spec is accepted; its limits are CPU time', async (t) => {
  const stress = spawn(STRESS, ['--cpu', '4', '--timeout', '120'], { stdio: 'ignore' })
  const gone = new Promise((resolve) => stress.once('exit', resolve))
  t.teardown(async () => { stress.kill('SIGKILL'); await gone })
  const spec = files({
    'cluster.json': '{ "name": "test" }',
    'services/a.ts': `const weights: number[] = []\nfor (let i = 0; i < 100000; i++) weights.push(i % 7)\nexport default ${service}\n`,
    'services/b.ts': `interface S { run: unknown }\nconst s: S = ${service}\nexport default s\n`
  })
  const started = Date.now()
  const r = await loadSpec(spec, { limits: { fileMs: 300, totalMs: 1000 } })
  const ms = Date.now() - started
  t.true(r.ok, r.ok ? '' : r.errors.map(formatSpecError).join('\n'))
  t.log(`two TS files with limits of 300 ms a file and 1 s in total, 4 CPU hogs running: accepted after ${ms} ms of real time`)
})
