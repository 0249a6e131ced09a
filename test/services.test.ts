import test from 'ava'
import { chmod, mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { TestCluster } from './helpers/cluster'
import { startGitServer } from './helpers/git-server'
import { waitFor } from './helpers/wait'
import { gone, running } from './helpers/procs'
import type { ServicesReport } from '../repl/render'

const procs = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs')
const fixture = (name: string): string => join(procs, name)


interface Setup { c: TestCluster, dir: string, write (path: string, value: unknown): Promise<void>, remove (path: string): Promise<void> }

async function setup (t: { teardown (fn: () => Promise<void>): void }, cluster: Record<string, unknown> = {}): Promise<Setup> {
  const c = await TestCluster.create()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-services-'))
  t.teardown(async () => { await c.cleanup(); await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'services'))
  const write = async (path: string, value: unknown): Promise<void> => { await writeFile(join(dir, path), JSON.stringify(value, null, 2)) }
  await write('cluster.json', { name: 'test', minNodes: 1, hubs: { count: 2 }, ...cluster })
  return { c, dir, write, remove: async (path) => { await rm(join(dir, path), { force: true }) } }
}

const sleeper = (placement: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  run: { command: 'node', args: [fixture('sleeper.js')] }, placement, stopGraceMs: 2000, ...extra
})

async function services (c: TestCluster, on: string): Promise<ServicesReport> {
  const client = await c.client(on)
  try { return await client.services() } finally { client.close() }
}

/** Instances of `name` in state `state`, as node `on` reports them. */
async function instances (c: TestCluster, on: string, name: string, state = 'ready') {
  const s = (await services(c, on)).services.find((x) => x.name === name)
  return (s?.instances ?? []).filter((i) => i.state === state)
}

test.serial('services: each placement kind runs where the spec says, and selectors narrow it', async (t) => {
  const s = await setup(t)
  const image = { specDir: s.dir }
  await s.c.start({ name: 'a', memoryMb: 4000, labels: { zone: 'a' }, image, hubs: { count: 2 } })
  await s.c.start({ name: 'b', memoryMb: 3000, labels: { zone: 'b' }, image, hubs: { count: 2 } })
  await s.c.start({ name: 'c', memoryMb: 1000, labels: { zone: 'b' }, image, hubs: { count: 2 } })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.write('services/everywhere.json', sleeper({ kind: 'every' }))
  await s.write('services/onhubs.json', sleeper({ kind: 'hubs' }))
  await s.write('services/one.json', sleeper({ kind: 'singleton' }))
  await s.write('services/two.json', sleeper({ kind: 'replicas', count: 2 }))
  await s.write('services/zoned.json', sleeper({ kind: 'every', labels: { zone: 'b' } }))
  await s.write('services/big.json', sleeper({ kind: 'every', minMemoryMb: 2000 }))
  const nodesOf = async (name: string, count: number): Promise<string[]> =>
    (await waitFor(async () => { const r = await instances(s.c, 'c', name); return r.length === count ? r : undefined }, { what: `${count} ready instances of ${name}` })).map((i) => i.node).sort()
  t.deepEqual(await nodesOf('everywhere', 3), ['a', 'b', 'c'])
  t.deepEqual(await nodesOf('onhubs', 2), ['a', 'b'])
  t.is((await nodesOf('one', 1)).length, 1)
  const two = await nodesOf('two', 2)
  t.not(two[0], two[1], 'replicas spread over nodes')
  t.deepEqual(await nodesOf('zoned', 2), ['b', 'c'])
  t.deepEqual(await nodesOf('big', 2), ['a', 'b'])
  // Every instance has its own process and log.
  const client = await s.c.client('b')
  const path = await client.logs('a', 'everywhere', { dir: join(s.dir, 'downloaded') })
  client.close()
  const text = await readFile(path, 'utf8')
  t.regex(text, / out sleeper started pid \d+/)
  t.regex(text, / err sleeper says hello on stderr/)
})

test.serial('services: what cannot be placed is reported with the reason', async (t) => {
  const s = await setup(t)
  await s.c.start({ name: 'a', memoryMb: 2048, image: { specDir: s.dir } })
  await s.write('services/huge.json', sleeper({ kind: 'singleton' }, { resources: { memoryMb: 4096 } }))
  await s.write('services/nowhere.json', sleeper({ kind: 'every', arch: 'sparc' }))
  const report = await waitFor(async () => { const r = await services(s.c, 'a'); return r.services.length === 2 ? r : undefined }, { what: 'both services reported' })
  const huge = report.services.find((x) => x.name === 'huge')
  const nowhere = report.services.find((x) => x.name === 'nowhere')
  t.regex(huge?.unschedulable[0]?.reason ?? '', /needs 4096 MB, largest free is 2048 MB on a/)
  t.regex(nowhere?.unschedulable[0]?.reason ?? '', /sparc/)
  t.is(huge?.instances.length, 0)
})

test.serial('services: nothing starts below minNodes; pause freezes and resumes the processes', async (t) => {
  const s = await setup(t, { minNodes: 2, belowMinNodes: 'pause' })
  await s.write('services/everywhere.json', sleeper({ kind: 'every' }))
  const image = { specDir: s.dir }
  await s.c.start({ name: 'a', image })
  const phase = async (): Promise<string> => { const cl = await s.c.client('a'); try { return await cl.phase() } finally { cl.close() } }
  await waitFor(async () => (await phase()) === 'forming: 1 of 2 nodes', { what: 'phase forming' })
  t.is((await services(s.c, 'a')).services.length, 0, 'nothing is assigned while forming')
  await s.c.start({ name: 'b', image })
  await waitFor(async () => (await instances(s.c, 'a', 'everywhere')).length === 2, { what: 'both instances ready once minNodes is reached' })
  const onA = (await instances(s.c, 'a', 'everywhere')).find((i) => i.node === 'a')
  t.truthy(onA)
  s.c.node('b').proc.signal('SIGTERM')
  await waitFor(async () => (await instances(s.c, 'a', 'everywhere', 'paused')).length === 1, { what: "a's instance paused" })
  t.regex(await phase(), /^degraded: 1 of 2 nodes/)
  await s.c.start({ name: 'b', image, address: s.c.node('b').address })
  await waitFor(async () => (await instances(s.c, 'a', 'everywhere')).length === 2, { what: 'resumed when the node returns' })
  t.regex(await s.c.node('a').log(), /everywhere@a: resuming/)
})

test.serial('services: below minNodes, "stop" stops the processes and "keep" keeps them', async (t) => {
  for (const policy of ['stop', 'keep'] as const) {
    const s = await setup(t, { minNodes: 2, belowMinNodes: policy })
    await s.write('services/everywhere.json', sleeper({ kind: 'every' }))
    const image = { specDir: s.dir }
    await s.c.start({ name: 'a', image })
    await s.c.start({ name: 'b', image })
    await waitFor(async () => (await instances(s.c, 'a', 'everywhere')).length === 2, { what: `${policy}: both running` })
    s.c.node('b').proc.signal('SIGTERM')
    await s.c.waitForView({ b: 'left' }, { on: ['a'] })
    if (policy === 'stop') {
      await waitFor(async () => (await services(s.c, 'a')).services.every((x) => x.instances.length === 0), { what: 'stop: every instance stopped' })
    } else {
      await waitFor(async () => /^degraded/.test((await services(s.c, 'a')).phase?.reason ?? ''), { what: 'keep: degraded' })
      t.is((await instances(s.c, 'a', 'everywhere')).length, 1, 'keep: the instance keeps running')
    }
    await s.c.cleanup()
  }
  t.pass()
})

test.serial('supervisor: a crashing process restarts with backoff, a sick one is not ready, a memory hog is killed with the reason', async (t) => {
  const s = await setup(t)
  await s.c.start({ name: 'a', image: { specDir: s.dir } })
  await s.write('services/crash.json', { run: { command: 'node', args: [fixture('crasher.js'), '3', '50'] }, placement: { kind: 'singleton' }, restart: { policy: 'always', backoffMs: 100, maxBackoffMs: 400 } })
  await s.write('services/sick.json', { run: { command: 'node', args: [fixture('http-sick.js')] }, placement: { kind: 'singleton' }, health: { http: { path: '/health' }, intervalMs: 100, timeoutMs: 500 } })
  await s.write('services/hog.json', { run: { command: 'node', args: [fixture('hog.js')] }, placement: { kind: 'singleton' }, resources: { memoryMb: 64 }, restart: { policy: 'always', backoffMs: 5000 } })
  const find = async (name: string) => (await services(s.c, 'a')).services.find((x) => x.name === name)?.instances[0]
  const crash = await waitFor(async () => { const i = await find('crash'); return (i?.restarts ?? 0) >= 3 && i?.state === 'backoff' ? i : undefined }, { what: 'three restarts' })
  t.regex(crash.reason ?? '', /exited with code 3; restarting in [\d.]+ m?s \(attempt \d+\)/)
  const sick = await find('sick')
  t.is(sick?.state, 'starting', 'a process whose health check fails is not ready')
  const hog = await waitFor(async () => { const i = await find('hog'); return /exceeded memory limit 64 MB: rss \d+ MB/.test(i?.reason ?? '') ? i : undefined }, { what: 'the hog to be killed' })
  t.regex(hog.reason ?? '', /exceeded memory limit 64 MB/)
  const client = await s.c.client('a')
  const log = await readFile(await client.logs('a', 'hog', { dir: join(s.dir, 'downloaded') }), 'utf8')
  client.close()
  t.regex(log, /exceeded memory limit 64 MB: rss \d+ MB/)
})

test.serial('supervisor: a changed service is replaced one instance at a time, always one ready', async (t) => {
  const s = await setup(t)
  const image = { specDir: s.dir }
  await s.c.start({ name: 'a', image })
  await s.c.start({ name: 'b', image })
  await s.c.waitForView({ a: 'alive', b: 'alive' })
  const web = (v: string) => ({ run: { command: 'node', args: [fixture('http-ok.js')], env: { VERSION: v } }, placement: { kind: 'replicas', count: 2 }, health: { http: { path: '/health' }, intervalMs: 100 }, stopGraceMs: 2000 })
  await s.write('services/web.json', web('1'))
  const v1 = await waitFor(async () => { const r = await instances(s.c, 'a', 'web'); return r.length === 2 ? r[0].version : undefined }, { what: 'two ready instances of v1' })
  await s.write('services/web.json', web('2'))
  let minReady = 2
  let v2 = ''
  await waitFor(async () => {
    const all = (await services(s.c, 'a')).services.find((x) => x.name === 'web')?.instances ?? []
    const ready = all.filter((i) => i.state === 'ready')
    // `unknown`: its node is suspect to the observer for a moment (a loaded machine), which
    // says nothing of the rollout; only instances stopped or starting count against it.
    minReady = Math.min(minReady, all.filter((i) => i.state === 'ready' || i.state === 'unknown').length)
    const fresh = ready.filter((i) => i.version !== v1)
    if (fresh.length === 2) v2 = fresh[0].version
    return fresh.length === 2
  }, { intervalMs: 20, what: 'both instances replaced' })
  t.not(v2, v1)
  t.true(minReady >= 1, `at least one instance stayed ready during the replacement (min seen: ${minReady})`)
})

test.serial('supervisor: a killed node\'s singleton moves elsewhere, never running twice', async (t) => {
  const s = await setup(t)
  const image = { specDir: s.dir }
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  // The service runs as its own user: the file it runs must be readable by it.
  await chmod(s.dir, 0o755)
  await writeFile(join(s.dir, 'single.js'), 'process.on(\'SIGTERM\', () => process.exit(0)); setInterval(() => {}, 1000)')
  await s.write('services/single.json', { run: { command: 'node', args: [join(s.dir, 'single.js')] }, placement: { kind: 'singleton' }, stopGraceMs: 1000 })
  const first = await waitFor(async () => (await instances(s.c, 'a', 'single'))[0], { what: 'the singleton to run' })
  const victim = first.node
  const observer = ['a', 'b', 'c'].find((n) => n !== victim) as string
  // Counted as the host sees them: the pids an instance prints are its PID namespace's.
  const pidsAlive = async (): Promise<number> => (await running('node', join(s.dir, 'single.js'))).length
  const killedAt = Date.now()
  s.c.node(victim).proc.signal('SIGKILL')
  const moved = await s.c.explainFailure(async () => await waitFor(async () => {
    t.true(await pidsAlive() <= 1, 'never two singleton processes alive at once')
    const r = await instances(s.c, observer, 'single')
    return r.length === 1 && r[0].node !== victim ? r[0] : undefined
  }, { intervalMs: 50, timeoutMs: 20_000, what: 'the singleton to move' }))
  t.log(`moved from ${victim} to ${moved.node} in ${Date.now() - killedAt} ms`)
  // Ready means spawned (no health check): the new process may not have written its mark yet.
  await s.c.explainFailure(async () => await waitFor(async () => await pidsAlive() === 1, { what: 'the new singleton to write its mark' }))
  // The node returns: placement settles with still exactly one.
  await s.c.start({ name: victim, image, address: s.c.node(victim).address })
  await s.c.waitForView({ [victim]: 'alive' })
  await s.c.explainFailure(async () => await waitFor(async () => {
    t.true(await pidsAlive() <= 1, 'never two while the node returns')
    return (await instances(s.c, observer, 'single')).length === 1
  }, { intervalMs: 50, what: 'one singleton after the node returned' }))
})

test.serial('supervisor: no process outlives a node that stops', async (t) => {
  const s = await setup(t)
  await s.write('services/forker.json', { run: { command: 'node', args: [fixture('forker.js')] }, placement: { kind: 'every' }, stopGraceMs: 1000 })
  const a = await s.c.start({ name: 'a', image: { specDir: s.dir } })
  await waitFor(async () => (await instances(s.c, 'a', 'forker')).length === 1, { what: 'the forker to run' })
  await waitFor(async () => /grandchild pid \d+/.test(await readFile(join(a.dir, 'data', 'logs', 'forker@a.log'), 'utf8').catch(() => '')), { what: 'the grandchild to start' })
  // Host pids of the forker and its grandchild (node -e ...): what the instance printed are namespace pids.
  const pids = await running('node', fixture('forker.js'))
  t.true(pids.length >= 2)
  a.proc.signal('SIGTERM')
  await a.proc.exited
  for (const pid of pids) t.true(await gone(pid), `pid ${pid} is gone`)
})

test.serial('services: code from another git repo is fetched and built once per commit, and the process reaches the local API', async (t) => {
  const s = await setup(t)
  const git = await startGitServer()
  t.teardown(async () => await git.stop())
  const app = [
    "const fs = require('fs')",
    "console.log('built: ' + fs.readFileSync('built.txt', 'utf8').trim())",
    "fetch(process.env.ORIGIN_API + '/v1/self', { headers: { authorization: 'Bearer ' + process.env.ORIGIN_API_KEY } })",
    "  .then((r) => r.json()).then((j) => console.log('self: ' + JSON.stringify(j)))",
    "fetch(process.env.ORIGIN_API + '/v1/self').then((r) => console.log('without key: ' + r.status))",
    "setInterval(() => console.log('tick'), 200)"
  ].join('\n')
  const commit = await git.seed({ 'app.js': app })
  await s.c.start({ name: 'a', image: { specDir: s.dir } })
  await s.write('services/app.json', { run: { command: 'node', args: ['app.js'] }, code: { repo: git.url, ref: 'main', build: 'echo "at $(date +%s)" > built.txt; echo build done' }, placement: { kind: 'singleton' }, stopGraceMs: 1000 })
  await waitFor(async () => (await instances(s.c, 'a', 'app')).length === 1, { what: 'the app to run' })
  const client = await s.c.client('a')
  const path = await waitFor(async () => {
    const p = await client.logs('a', 'app', { dir: join(s.dir, 'downloaded') })
    const text = await readFile(p, 'utf8')
    return /self: .*"service":"app"/.test(text) && /without key: /.test(text) ? p : undefined
  }, { what: 'the app to print what the API said, with and without its key' })
  const text = await readFile(path, 'utf8')
  t.regex(text, /built: at \d+/)
  t.regex(text, /self: \{"node":"a","service":"app","instance":"app-0"\}/)
  t.regex(text, /without key: 401/)
  t.true(git.requestsBy('origin-node/a') > 0, 'the node fetched the code repo')
  const codeDirs = await readdir(join(s.c.node('a').dir, 'data', 'code'))
  t.true(codeDirs.some((d) => d.startsWith(`app-${commit.slice(0, 12)}`)), 'checked out at the pushed commit')
  // follow: new lines keep arriving in the downloaded file
  const followed = await client.logs('a', 'app', { lines: 1, follow: true, dir: join(s.dir, 'followed') })
  await waitFor(async () => ((await readFile(followed, 'utf8')).match(/ out tick/g) ?? []).length >= 3, { what: 'followed lines to arrive' })
  await client.unfollow()
  client.close()
  const buildLog = await readFile(join(s.c.node('a').dir, 'data', 'logs', 'build-app.log'), 'utf8')
  t.is(buildLog.match(/build done/g)?.length, 1, 'built once for the commit')
})

test.serial('services: after crashes leave no majority, singletons wait; forgetting the dead nodes lets them run again', async (t) => {
  const s = await setup(t)
  const image = { specDir: s.dir }
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.write('services/one.json', sleeper({ kind: 'singleton' }))
  const first = await waitFor(async () => (await instances(s.c, 'a', 'one'))[0], { what: 'the singleton to run' })
  const [survivor, ...crashed] = [first.node, ...['a', 'b', 'c'].filter((n) => n !== first.node)].reverse()
  for (const n of crashed) s.c.node(n).proc.signal('SIGKILL')
  await s.c.waitForView(Object.fromEntries(crashed.map((n) => [n, 'dead'])), { on: [survivor] })
  const client = await s.c.client(survivor)
  const stuck = await waitFor(async () => ((await client.services()).services.find((x) => x.name === 'one')?.instances ?? [])[0], { what: 'the singleton to be reported' })
  t.not(stuck.state, 'ready', 'one node of three is not a majority: the singleton does not run')
  await t.throwsAsync(client.forget(survivor), { message: /only a dead member can be forgotten/ })
  for (const n of crashed) await client.forget(n)
  await s.c.waitForView(Object.fromEntries(crashed.map((n) => [n, 'left'])), { on: [survivor] })
  await waitFor(async () => (await instances(s.c, survivor, 'one')).length === 1, { what: 'the singleton to run on the survivor' })
  client.close()
})

test.serial('supervisor: code trees of versions nothing runs any more are removed', async (t) => {
  const s = await setup(t)
  await mkdir(join(s.dir, 'app'))
  const node = await s.c.start({ name: 'a', image: { specDir: s.dir } })
  await s.write('services/app.json', { run: { command: 'node', args: ['app/main.js'] }, placement: { kind: 'every' }, paths: ['app/'], stopGraceMs: 500 })
  let previous = ''
  for (const v of ['1', '2', '3']) {
    await writeFile(join(s.dir, 'app', 'main.js'), `console.log('version ${v}'); setInterval(() => {}, 1000)\n`)
    previous = await waitFor(async () => {
      const r = (await instances(s.c, 'a', 'app'))[0]
      return r !== undefined && r.version !== previous ? r.version : undefined
    }, { what: `version ${v} to run` })
  }
  const trees = await waitFor(async () => {
    const names = (await readdir(join(node.dir, 'data', 'code'))).filter((n) => n.startsWith('app-spec-'))
    return names.length === 1 ? names : undefined
  }, { what: 'only the running version\'s tree to be left' })
  t.is(trees.length, 1)
})
