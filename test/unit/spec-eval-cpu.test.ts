/**
 * Spec evaluation limits count the evaluator's CPU time, not real time. On a machine whose
 * CPUs are all busy, a valid spec is accepted even though the evaluator takes far longer
 * than its limits in real time, and a loop is still stopped at its file's limit; an
 * evaluator that gets no CPU at all ends with a failure that is not a rejection (the spec is
 * tried again later). Runs on its own (ava.scale.config.mjs): it keeps every CPU busy on
 * purpose. Skipped with a message where stress-ng is missing.
 */
import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { formatSpecError, loadSpec, type SpecFiles } from '../../node/desired/load'

const STRESS = '/usr/bin/stress-ng'
const it = existsSync(STRESS) ? test.serial : test.serial.skip
if (!existsSync(STRESS)) console.log(`spec-eval-cpu: skipped: no ${STRESS} (apt-get install stress-ng)`)

function files (entries: Record<string, string>): SpecFiles {
  return new Map(Object.entries(entries).map(([path, text]) => [path, Buffer.from(text)]))
}

const service = JSON.stringify({ run: { command: 'node', args: ['x.js'] }, placement: { kind: 'every' } })

it('spec eval: on a machine with every CPU busy, a valid spec is accepted; its limits are CPU time', async (t) => {
  // Four CPU hogs at the priority of the node and its programs on this machine's cores: the
  // evaluator (nice 19) gets a small share of a CPU, so its real time is many times its
  // CPU time. With limits on real time this spec was rejected.
  const stress = spawn(STRESS, ['--cpu', '4', '--timeout', '120'], { stdio: 'ignore' })
  const gone = new Promise((resolve) => stress.once('exit', resolve))
  t.teardown(async () => { stress.kill('SIGKILL'); await gone })
  const spec = files({
    'cluster.json': '{ "name": "test" }',
    'services/a.ts': `const weights: number[] = []\nfor (let i = 0; i < 100000; i++) weights.push(i % 7)\nexport default ${service}\n`,
    'services/b.ts': `interface S { run: unknown }\nconst s: S = ${service}\nexport default s\n`
  })
  const started = Date.now()
  const r = await loadSpec(spec, { limits: { fileMs: 1000, totalMs: 3000 } })
  const ms = Date.now() - started
  t.true(r.ok, r.ok ? '' : r.errors.map(formatSpecError).join('\n'))
  t.log(`two TS files with limits of 1 s a file and 3 s in total, 4 CPU hogs running: accepted after ${ms} ms of real time`)
})

/** The pids of this process's children whose command line holds `word`. */
function children (word: string): number[] {
  const found: number[] = []
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const list = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8')
    for (const pid of list.split(' ').filter(Boolean).map(Number)) {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(word)) found.push(pid)
    }
  }
  return found
}

test.serial('spec eval: an evaluator the machine gives no CPU fails after 20 times its total limit in real time, and the spec is not rejected', async (t) => {
  if (!existsSync(`/proc/${process.pid}/task/${process.pid}/children`)) return t.pass('no /proc children lists here')
  const stopped: number[] = []
  // The evaluator asks for its first file once it runs under its limits: then it is stopped
  // (SIGSTOP: no CPU at all from here on), as a saturated machine would starve it.
  const spec = new (class extends Map<string, Buffer> {
    override has (path: string): boolean {
      if (path === 'services/a.ts') for (const pid of children('evaluator')) { process.kill(pid, 'SIGSTOP'); stopped.push(pid) }
      return super.has(path)
    }
  })(files({ 'cluster.json': '{ "name": "test" }', 'services/a.ts': `export default ${service}\n` }))
  t.teardown(() => { for (const pid of stopped) { try { process.kill(pid, 'SIGKILL') } catch {} } })
  const started = Date.now()
  const err = await t.throwsAsync(loadSpec(spec, { limits: { totalMs: 100 } }))
  t.is(stopped.length, 1)
  t.is((err as { code?: string } | undefined)?.code, 'E_START_FAILED')
  t.regex(err?.message ?? '', /the machine gave the spec evaluator too little CPU: 2 s of real time were not enough for at most 100 ms of CPU time/)
  t.log(`failed ${Date.now() - started} ms after the evaluation started`)
})
