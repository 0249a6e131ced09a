/**
 * The Runtime contract (node/runtime/contract.ts), one suite run against every runtime:
 * host processes (node/runtime/process.ts, contained as this machine allows) and Docker
 * containers (node/runtime/docker.ts, against a dockerd of the test's own from
 * test/helpers/dockerd.ts; skipped with a message where none can run). Each run is
 * `sh -c SCRIPT` (the host's sh, or busybox's in the test image), so the same scripts test
 * both: output by stream, the exit code, SIGTERM handled, a run that ignores it killed
 * after its grace, pause and resume, usage, and the OOM flag where the runtime enforces
 * memory itself.
 */
import test, { type ExecutionContext } from 'ava'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type Dockerode from 'dockerode'
import { silentLogger } from '../node/log'
import type { RunExit, RunHandle, RunRequest, Runtime } from '../node/runtime/contract'
import { dockerRuntime } from '../node/runtime/docker'
import { processRuntime } from '../node/runtime/process'
import { probeContainment } from '../node/supervisor/contain'
import { busyboxPath, dockerSkipReason, importBusybox, startDockerd, type Daemon } from './helpers/dockerd'
import { waitFor } from './helpers/wait'

const IMAGE = 'origin-runtime-compliance:1'

let tmp = ''
let daemon: Daemon | undefined
let docker: Dockerode | undefined
let dockerWhy = dockerSkipReason()

test.before(async () => {
  tmp = await mkdtemp(join(os.tmpdir(), 'origin-runtime-compliance-'))
  if (dockerWhy === undefined && busyboxPath === undefined) dockerWhy = "no static busybox (Debian's busybox-static; .ci/run installs it)"
  if (dockerWhy !== undefined) { console.log(`runtime compliance: docker skipped: ${dockerWhy}`); return }
  await mkdir(join(tmp, 'd'))
  daemon = await startDockerd(join(tmp, 'd'))
  if (daemon.failure !== undefined) { dockerWhy = `dockerd did not start: ${daemon.failure}`; console.log(`runtime compliance: docker skipped: ${dockerWhy}`); return }
  await importBusybox(daemon, tmp, IMAGE)
  const { default: Docker } = await import('dockerode')
  docker = new Docker({ socketPath: daemon.socket })
})

test.after.always(async () => {
  await daemon?.stop()
  if (tmp !== '') await rm(tmp, { recursive: true, force: true })
})

interface Implementation {
  name: string
  /** Why it cannot run here (known once the before hook ran). */
  skip: () => string | undefined
  runtime: () => Promise<Runtime>
  program: (id: string) => RunRequest['program']
  /** The run's arguments for `sh -c script`: a command's after it, an image's whole command line. */
  args: (script: string) => string[]
}

const implementations: Implementation[] = [
  {
    name: 'process',
    skip: () => undefined,
    runtime: async () => processRuntime({ containment: await probeContainment() }),
    program: () => ({ kind: 'command', command: 'sh', cwd: tmp }),
    args: (script) => ['-c', script]
  },
  {
    name: 'docker',
    skip: () => dockerWhy,
    runtime: async () => dockerRuntime({ docker: docker as Dockerode, nodeId: 'compliance' }),
    program: () => ({ kind: 'image', image: IMAGE, service: 'box' }),
    args: (script) => ['sh', '-c', script]
  }
]

interface Run { h: RunHandle, out: () => string, err: () => string, exit: Promise<RunExit> }

let runs = 0
async function start (t: ExecutionContext, impl: Implementation, script: string, more: Partial<RunRequest> = {}): Promise<Run> {
  const rt = await impl.runtime()
  const id = `rc-${impl.name}-${++runs}`
  let out = ''
  let err = ''
  const h = await rt.start({
    id, program: impl.program(id), args: impl.args(script), env: { GREETING: 'hello from env' }, log: silentLogger,
    output: (stream, chunk) => { if (stream === 'out') out += chunk.toString(); else err += chunk.toString() },
    ...more
  })
  t.teardown(async () => { h.kill(); await h.exit })
  return { h, out: () => out, err: () => err, exit: h.exit }
}

/** Whether `p` settles within `ms`: for what must NOT happen in a window (a run that should keep running). */
async function settlesWithin (p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const r = await Promise.race([p.then(() => true), new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) })])
  clearTimeout(timer)
  return r
}

const ticking = 'trap "" TERM; while :; do echo tick; sleep 0.1; done'

for (const impl of implementations) {
  const it = (title: string, fn: (t: ExecutionContext) => Promise<void>): void => {
    test.serial(`${impl.name} runtime: ${title}`, async (t) => {
      const why = impl.skip()
      if (why !== undefined) { t.log(`skipped: ${why}`); t.pass(); return }
      await fn(t)
    })
  }

  it('output arrives by stream, the environment is the one given, and the exit code is the script\'s', async (t) => {
    const r = await start(t, impl, 'echo "$GREETING"; echo oops >&2; exit 3')
    const exit = await r.exit
    t.is(exit.code, 3)
    t.is(exit.signal, null)
    t.is(r.out(), 'hello from env\n')
    t.is(r.err(), 'oops\n')
    t.not(r.h.started, '')
    t.not(r.h.what, '')
  })

  it('terminate() sends SIGTERM, which a run may handle and exit on', async (t) => {
    const r = await start(t, impl, 'trap "echo got term; exit 7" TERM; echo up; while :; do sleep 0.1; done')
    await waitFor(() => r.out().includes('up'), { what: 'the run to be up' })
    r.h.terminate(Date.now() + 10_000)
    const exit = await r.exit
    t.is(exit.code, 7)
    t.regex(r.out(), /got term/)
  })

  it('a run that ignores SIGTERM keeps running through its grace, and kill() ends it', async (t) => {
    const r = await start(t, impl, ticking)
    await waitFor(() => r.out().includes('tick'), { what: 'the run to tick' })
    r.h.terminate(Date.now() + 1000)
    t.false(await settlesWithin(r.exit, 700), 'still running within its grace')
    r.h.kill()
    const exit = await r.exit
    t.true(exit.signal === 'SIGKILL' || exit.code === 137, `killed: ${JSON.stringify(exit)}`)
  })

  it('pause() stops its output until resume()', async (t) => {
    const r = await start(t, impl, ticking)
    await waitFor(() => r.out().includes('tick'), { what: 'the run to tick' })
    r.h.pause()
    // Output already on its way may still land: the count settles, then stays.
    let seen = -1
    await waitFor(async () => { const now = r.out().length; const same = now === seen; seen = now; return same }, { what: 'output to stop', intervalMs: 300 })
    t.false(await settlesWithin(waitFor(() => r.out().length > seen, { timeoutMs: 60_000, intervalMs: 20 }), 600), 'no output while paused')
    r.h.resume()
    await waitFor(() => r.out().length > seen, { what: 'output again after resume' })
    t.pass()
  })

  it('usage() lists the run\'s live processes with their memory', async (t) => {
    const r = await start(t, impl, ticking)
    await waitFor(() => r.out().includes('tick'), { what: 'the run to tick' })
    const u = await waitFor(async () => { const x = await r.h.usage(); return x.pids.length > 0 ? x : undefined }, { what: 'usage to list processes' })
    t.true(u.rssKb > 0, `rss ${u.rssKb} kB`)
    t.true(u.cpuTicks >= 0)
    t.true(u.pids.every((p) => Number.isInteger(p) && p > 1), `host pids: ${u.pids.join(' ')}`)
    r.h.kill()
    await r.exit
    t.deepEqual((await r.h.usage()).pids, [], 'nothing once it ended')
  })

  it('a run over its memory limit is OOM-killed and says so where the runtime enforces the limit', async (t) => {
    // Asked of a harmless run first: where the runtime does not enforce the limit, the memory hog would be unbounded.
    const probe = await start(t, impl, 'sleep 30', { memoryLimitMb: 16 })
    probe.h.kill()
    await probe.exit
    if (!probe.h.enforcesMemory) {
      t.log(`${impl.name}: does not enforce memory itself; the supervisor samples usage() and kills (node/supervisor)`)
      t.not((await probe.exit).oomKilled, true)
      return
    }
    const r = await start(t, impl, 'x=0123456789; while :; do x=$x$x; done', { memoryLimitMb: 16 })
    const exit = await r.exit
    t.true(exit.oomKilled, `the engine reports the OOM kill: ${JSON.stringify(exit)}`)
  })
}
