/**
 * Services as Docker containers, with a dockerd of the test's own (test/helpers/dockerd.ts)
 * and a tiny image made here: `docker import` of a root filesystem holding a static
 * busybox. Containers use the host network and bind the nodes' loopback addresses only.
 * Skipped, saying why, where dockerd cannot run.
 */
import test from 'ava'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type Dockerode from 'dockerode'
import { silentLogger } from '../node/log'
import { dockerRuntime } from '../node/runtime/docker'
import { ManagedProcess, waitReady } from '../node/supervisor/process'
import { busyboxPath, startDockerd, dockerSkipReason, importBusybox, type Daemon } from './helpers/dockerd'
import { specDirCluster, type SpecDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

const IMAGE = 'origin-test/busybox:1'
const skip = dockerSkipReason()
let daemon: Daemon | undefined
let docker: Dockerode
let tmp: string
let why: string | undefined = skip

test.before(async () => {
  if (skip !== undefined) return
  tmp = await mkdtemp(join(os.tmpdir(), 'origin-containers-'))
  await mkdir(join(tmp, 'd'))
  daemon = await startDockerd(join(tmp, 'd'))
  if (daemon.failure !== undefined) { why = `dockerd did not start: ${daemon.failure}`; return }
  if (busyboxPath === undefined) { why = 'no static busybox (Debian\'s busybox-static; .ci/run installs it)'; return }
  await importBusybox(daemon, tmp, IMAGE, { 'www/index.html': 'hello from a container\n' })
  const { default: Docker } = await import('dockerode')
  docker = new Docker({ socketPath: daemon.socket })
})

test.after.always(async () => {
  await daemon?.stop()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
})

/** A container service of the test image. */
const container = (args: string[], placement: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  run: { image: IMAGE, args }, placement, stopGraceMs: 1000, ...extra
})
const httpd = ['httpd', '-f', '-p', '${ORIGIN_HOST}:$PORT', '-h', '/www']
const httpHealth = { http: { path: '/index.html' }, intervalMs: 200 }

async function containersOf (labels: string[], all = false): Promise<Dockerode.ContainerInfo[]> {
  return await docker.listContainers({ all, filters: { label: labels } })
}

async function cluster (t: Parameters<typeof specDirCluster>[0], nodes: string[]): Promise<SpecDirCluster> {
  const s = await specDirCluster(t)
  for (const n of nodes) await s.c.start({ name: n, image: { specDir: s.dir, docker: { socket: daemon!.socket } }, logLevel: 'info' })
  await s.c.explainFailure(async () => await s.c.waitForView(Object.fromEntries(nodes.map((n) => [n, 'alive']))))
  return s
}

function skipped (t: { log: (s: string) => void, pass: () => void }): boolean {
  if (why === undefined) return false
  t.log(`skipped: ${why}`)
  t.pass()
  return true
}

test.serial('containers: without a Docker engine a container service is unschedulable, in words; process services run as ever', async (t) => {
  // No dockerd needed: the node's socket leads nowhere.
  const s = await specDirCluster(t)
  await s.c.start({ name: 'a', image: { specDir: s.dir, docker: { socket: join(os.tmpdir(), 'origin-no-engine', 'docker.sock') } } })
  await s.write('services/box.json', container(httpd, { kind: 'singleton' }))
  await s.write('services/plain.json', { run: { command: 'sleep', args: ['60'] }, placement: { kind: 'every' }, stopGraceMs: 500 })
  await s.c.explainFailure(async () => await s.waitInstances('a', 'plain', 1))
  const box = await waitFor(async () => (await s.services('a')).services.find((x) => x.name === 'box' && x.unschedulable.length > 0), { what: 'box to be unschedulable' })
  t.regex(box.unschedulable[0].reason, /runs containers \(run\.image\), and no alive node has a Docker engine/)
  t.deepEqual(box.instances, [])
})

test.serial('containers: replicas and a singleton run as containers across three nodes, health-checked over http; stats show their cpu and memory; a node that stops removes its containers', async (t) => {
  if (skipped(t)) return
  const s = await cluster(t, ['a', 'b', 'c'])
  await s.write('services/web.json', container(httpd, { kind: 'replicas', count: 2 }, { health: httpHealth }))
  await s.write('services/one.json', container(httpd, { kind: 'singleton' }, { health: httpHealth, resources: { cpuShares: 512, cpus: 0.5 } }))
  // About 10 MB held and a busy loop a good part of the time.
  await s.write('services/hog.json', container(['sh', '-c', 'x=0123456789; i=0; while [ $i -lt 20 ]; do x=$x$x; i=$((i+1)); done; while :; do j=0; while [ $j -lt 2000 ]; do j=$((j+1)); done; sleep 0.05; done'], { kind: 'singleton' }))
  const web = await s.c.explainFailure(async () => await s.waitInstances('a', 'web', 2))
  const [one] = await s.waitInstances('a', 'one', 1)
  t.is(new Set(web.map((i) => i.node)).size, 2, 'the replicas are on two nodes')
  for (const i of [...web, one]) {
    const page = await (await fetch(`http://${i.address ?? ''}/index.html`)).text()
    t.is(page, 'hello from a container\n', `${i.instance} serves from its container at ${i.address ?? ''}`)
    const [c] = await containersOf([`origin.instance=${i.instance}`])
    t.truthy(c, `${i.instance} is a container`)
    t.is(c.Labels['origin.node'], i.node)
    t.is(c.Labels['origin.service'], i.instance.replace(/(-\d+|@.*)$/, ''))
    t.is(c.HostConfig.NetworkMode, 'host')
  }
  // The singleton's CPU weight and cap are the engine's.
  const [oneC] = await containersOf([`origin.instance=${one.instance}`])
  const inspected = await docker.getContainer(oneC.Id).inspect()
  t.is(inspected.HostConfig.CpuShares, 512)
  t.is(inspected.HostConfig.NanoCpus, 500_000_000)

  const client = await s.c.client('a')
  const hog = await waitFor(async () => {
    const r = await client.stats()
    const h = r.nodes.flatMap((n) => n.status === 'ok' ? n.instances : []).find((i) => i.service === 'hog')
    return h !== undefined && (h.cpuPercent ?? 0) > 5 && (h.memoryMb ?? 0) > 5 ? h : undefined
  }, { what: 'stats to show the hog container\'s cpu and memory', timeoutMs: 30_000 })
  t.true((hog.processes ?? 0) >= 2, `the engine's init and the shell: ${JSON.stringify(hog)}`)
  t.log(`hog container: ${hog.cpuPercent ?? '?'} % cpu, ${hog.memoryMb ?? '?'} MB, ${hog.processes ?? '?'} processes`)

  // A graceful stop: every container of the node is gone, not just stopped.
  const leaving = web[0].node
  const node = s.c.node(leaving)
  node.proc.signal('SIGTERM')
  await node.proc.exited
  t.deepEqual(await containersOf([`origin.node=${leaving}`], true), [], `${leaving} left no container behind`)
  await s.waitInstances('b' === leaving ? 'a' : 'b', 'web', 2)
})

test.serial('containers: a crashing container restarts with its output in the instance log; one over its memory limit is killed with the reason', async (t) => {
  if (skipped(t)) return
  const s = await cluster(t, ['a'])
  await s.write('services/crash.json', container(['sh', '-c', 'echo "up on $PORT as $ORIGIN_INSTANCE"; sleep 0.3; exit 3'], { kind: 'every' }, { restart: { policy: 'always', backoffMs: 200 } }))
  await s.write('services/oom.json', container(['sh', '-c', 'x=0123456789; while :; do x=$x$x; done'], { kind: 'every' }, { resources: { memoryMb: 16 }, restart: { policy: 'always', backoffMs: 200 } }))
  const crashed = await s.c.explainFailure(async () => await waitFor(async () => {
    const [i] = await s.instances('a', 'crash')
    return i !== undefined && (i.restarts ?? 0) >= 1 && /exited with code 3/.test(i.reason ?? '') ? i : undefined
  }, { what: 'crash to exit with code 3 and restart' }))
  t.regex(crashed.reason ?? '', /exited with code 3; restarting in/)
  const log = await readFile(join(s.c.node('a').dir, 'data', 'logs', 'crash@a.log'), 'utf8')
  t.regex(log, /out up on [0-9]+ as crash@a/, 'stdout of the container, stamped')
  t.regex(log, /origin started container [0-9a-f]{12} \(pid [0-9]+\)/)
  // An image the node does not have: the instance waits, saying so, and nothing is pulled.
  await s.write('services/absent.json', container([], { kind: 'every' }, { run: { image: 'origin-test/absent:1' } }))
  const absent = await waitFor(async () => {
    const [i] = await s.instances('a', 'absent')
    // 'pending' comes first as "assigned; not started yet", before the node has looked for the image.
    return i !== undefined && i.state === 'pending' && /is not on node/.test(i.reason ?? i.rollout ?? '') ? i : undefined
  }, { what: 'absent to wait for its image, saying so' })
  t.regex(absent.reason ?? absent.rollout ?? '', /image origin-test\/absent:1 is not on node a: load it, or give the service run\.image\.load \/ run\.image\.build; origin does not pull from registries/)
  const oom = await waitFor(async () => {
    const [i] = await s.instances('a', 'oom')
    return i !== undefined && /killed: out of memory \(limit 16 MiB\)/.test(i.reason ?? '') ? i : undefined
  }, { what: 'oom to be killed at its memory limit' })
  t.regex(oom.reason ?? '', /restarting in/)
  // Exited runs are removed by origin: at most the current run of each is there.
  const all = await containersOf(['origin.node=a'], true)
  t.true(all.length <= 2, `no exited containers pile up: ${all.map((c) => `${c.Labels['origin.instance']} ${c.State}`).join(', ')}`)
})

test.serial('containers: an image built on the node from a Dockerfile in the service\'s folder, again when its code changes', async (t) => {
  if (skipped(t)) return
  const s = await cluster(t, ['a'])
  await s.write('services/site/Dockerfile', `FROM ${IMAGE}\nCOPY page.html /www/index.html\n`)
  await s.write('services/site/page.html', 'one\n')
  await s.write('services/site.json', container(httpd, { kind: 'singleton' }, { health: httpHealth, run: { image: { build: {} }, args: httpd } }))
  const [v1] = await s.c.explainFailure(async () => await s.waitInstances('a', 'site', 1))
  t.is(await (await fetch(`http://${v1.address ?? ''}/index.html`)).text(), 'one\n')
  const [c1] = await containersOf(['origin.service=site'])
  t.regex(c1.Image, /^origin\/site:/, 'tagged by origin')
  await s.write('services/site/page.html', 'two\n')
  const [v2] = await waitFor(async () => {
    const r = await s.instances('a', 'site', 'ready')
    return r.length === 1 && r[0].version !== v1.version ? r : undefined
  }, { what: 'site to run its new version', timeoutMs: 60_000 })
  t.is(await (await fetch(`http://${v2.address ?? ''}/index.html`)).text(), 'two\n')
  const [c2] = await containersOf(['origin.service=site'])
  t.not(c2.Image, c1.Image, 'a new image for the new code version')
  t.regex(await readFile(join(s.c.node('a').dir, 'data', 'logs', 'build-site.log'), 'utf8'), /COPY page.html/)
})

test.serial('containers: a spec change replaces the container; kill -9 of its node moves the singleton and leaves nothing running; the node restarted on its data dir removes what it left', async (t) => {
  if (skipped(t)) return
  const s = await cluster(t, ['a', 'b', 'c'])
  await s.write('services/db.json', container(httpd, { kind: 'singleton' }, { health: httpHealth }))
  const [first] = await s.c.explainFailure(async () => await s.waitInstances('a', 'db', 1))
  const [before] = await containersOf(['origin.service=db'])
  const changedAt = Date.now()
  await s.write('services/db.json', container(httpd, { kind: 'singleton' }, { health: httpHealth, run: { image: IMAGE, args: httpd, env: { V: '2' } } }))
  const [replaced] = await waitFor(async () => {
    const r = await s.instances('a', 'db', 'ready')
    return r.length === 1 && r[0].version !== first.version ? r : undefined
  }, { what: 'db to run its new version', intervalMs: 50 })
  t.log(`spec change -> new container ready (http health every 200 ms): ${Date.now() - changedAt} ms`)
  t.is(replaced.node, first.node, 'replaced where it ran')
  const running = await containersOf(['origin.service=db'])
  t.is(running.length, 1, 'one container of the singleton runs')
  t.not(running[0].Id, before.Id, 'a new container')
  t.deepEqual(await containersOf([`origin.instance=${before.Labels['origin.instance']}`], true).then((l) => l.filter((c) => c.Id === before.Id)), [], 'the old one is removed')

  const victim = replaced.node
  const watcher = ['a', 'b', 'c'].find((n) => n !== victim) as string
  const node = s.c.node(victim)
  node.proc.signal('SIGKILL')
  await node.proc.exited
  // The engine, not the node, is a container's parent: the node's guard ends them.
  await waitFor(async () => (await containersOf([`origin.node=${victim}`])).length === 0 ? true : undefined, { what: `no container of ${victim} to run`, timeoutMs: 10_000 })
  const [moved] = await s.c.explainFailure(async () => await waitFor(async () => {
    const r = await s.instances(watcher, 'db', 'ready')
    return r.length === 1 && r[0].node !== victim ? r : undefined
  }, { what: 'db to move' }))
  const dbs = await containersOf(['origin.service=db'])
  t.deepEqual(dbs.map((c) => c.Labels['origin.node']), [moved.node], 'the singleton runs once, on its new node')

  t.true((await containersOf([`origin.node=${victim}`], true)).length >= 1, 'the killed node left an exited container for its next start')
  await s.c.start({ name: victim, address: node.address, image: { specDir: s.dir, docker: { socket: daemon!.socket } }, logLevel: 'info' })
  await waitFor(async () => (await containersOf([`origin.node=${victim}`], true)).length === 0 ? true : undefined, { what: `${victim} to remove what it left` })
  await s.c.explainFailure(async () => await waitFor(async () => /ended container [0-9a-f]{12} of db-0 \(exited\), left by a previous run of this node/.test(await s.c.node(victim).log()) ? true : undefined, { what: `${victim} to say what it ended` }), 80)
  t.pass()
})

test.serial('containers: an instance pauses and resumes with the engine, and a stop that comes while its container is being created ends it', async (t) => {
  if (skipped(t)) return
  const dir = await mkdtemp(join(tmp, 'mp-'))
  const runtime = dockerRuntime({ docker, nodeId: 'unit' })
  const make = (id: string): ManagedProcess => new ManagedProcess({
    id, command: '', image: { ref: IMAGE, service: 'box' }, runtime, args: ['sh', '-c', 'while :; do echo tick; sleep 0.1; done'],
    env: {}, cwd: dir, logPath: join(dir, `${id}.log`), log: silentLogger, restart: { policy: 'always' }, stopGraceMs: 1000
  })
  const p = make('box-0')
  const startedAt = Date.now()
  p.start()
  const ready = await waitReady(p, 30_000)
  t.log(`start -> container running (create, attach, start, inspect): ${Date.now() - startedAt} ms`)
  t.regex(ready.container ?? '', /^[0-9a-f]{12}$/)
  const id = ready.container as string
  p.pause()
  await waitFor(async () => (await docker.getContainer(id).inspect()).State.Paused ? true : undefined, { what: 'the container to be paused' })
  t.is(p.status().state, 'paused')
  p.resume()
  await waitFor(async () => (await docker.getContainer(id).inspect()).State.Running && !(await docker.getContainer(id).inspect()).State.Paused ? true : undefined, { what: 'the container to run again' })
  t.is(p.status().state, 'ready')
  await p.stop()
  t.is(p.status().state, 'stopped')
  t.deepEqual(await containersOf(['origin.instance=box-0'], true), [], 'removed once stopped')
  t.regex(await readFile(join(dir, 'box-0.log'), 'utf8'), /out tick/)

  const q = make('box-1')
  q.start()
  t.is(q.status().state, 'starting', 'the container is being created')
  await q.stop()
  t.is(q.status().state, 'stopped')
  t.deepEqual(await containersOf(['origin.instance=box-1'], true), [], 'nothing of it is left')
})

test.serial('containers: a paused node\'s containerised singleton is fenced by its watchdog before it runs elsewhere, never two at once', async (t) => {
  if (skipped(t)) return
  const s = await cluster(t, ['a', 'b', 'c'])
  await s.write('services/solo.json', container(httpd, { kind: 'singleton' }, { health: httpHealth }))
  const [first] = await s.c.explainFailure(async () => await s.waitInstances('a', 'solo', 1))
  const victim = first.node
  const observer = ['a', 'b', 'c'].find((n) => n !== victim) as string
  // Sampled from the engine throughout: never two containers of the singleton running.
  let done = false
  let most = 0
  const monitor = waitFor(async () => {
    most = Math.max(most, (await containersOf(['origin.service=solo'])).length)
    return done
  }, { intervalMs: 20, timeoutMs: 120_000, what: 'the end of the test' })
  const node = s.c.node(victim)
  node.proc.signal('SIGSTOP')
  t.teardown(() => { node.proc.signal('SIGCONT') })
  // The node cannot act: its watchdog kills the container's init.
  await waitFor(async () => (await containersOf([`origin.node=${victim}`])).length === 0 ? true : undefined, { what: `the watchdog of ${victim} to end its container`, timeoutMs: 10_000 })
  const [moved] = await s.c.explainFailure(async () => await waitFor(async () => {
    const r = await s.instances(observer, 'solo', 'ready')
    return r.length === 1 && r[0].node !== victim ? r : undefined
  }, { what: 'solo to run elsewhere', timeoutMs: 20_000 }))
  node.proc.signal('SIGCONT')
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await waitFor(async () => {
    const all = await Promise.all(['a', 'b', 'c'].map(async (n) => await s.instances(n, 'solo', 'ready')))
    return all.every((r) => r.length === 1 && r[0].node === all[0][0].node) ? true : undefined
  }, { what: 'every node to agree on one ready solo' })
  done = true
  await monitor
  t.is(most, 1, 'never two containers of the singleton at once')
  t.not(moved.node, victim)
})
