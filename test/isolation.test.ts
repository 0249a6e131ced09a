/**
 * Services run as users of their own (node/supervisor/users.ts): a service cannot read
 * another's environment, the node's keys or its data, and still has its own state dir,
 * temp dir and code. Root only (the node must be root to give out uids); CI runs as root.
 */
import test, { type ExecutionContext } from 'ava'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { join, resolve } from 'node:path'
import type { Logger } from '../node/log'
import { groupContainment, probeContainment, type Containment } from '../node/supervisor/contain'
import { readLog } from '../node/logfile'
import { ManagedProcess } from '../node/supervisor/process'
import { InstanceUsers } from '../node/supervisor/users'
import { running } from './helpers/procs'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

const fixtures = resolve(__dirname, '..', '..', 'test', 'fixtures')
const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet }

let containment: Containment
test.before(async () => { containment = await probeContainment() })

function needsUsers (t: ExecutionContext): boolean {
  if (containment.users) return true
  t.log(`skipped: services cannot run as users of their own here (${containment.detail}); needs root, as in CI`)
  t.pass()
  return false
}

/** A directory instances can read (mkdtemp makes 0700 ones), removed after the test. */
async function openDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-isolation-'))
  await chmod(dir, 0o755)
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** Uid (real) of a host pid, from /proc/<pid>/status. */
async function uidOf (pid: number): Promise<number> {
  return Number(/^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1])
}

/** Host pids whose command line (arguments joined by spaces) includes `text`. */
async function withCommandLine (text: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number)
  const lines = await Promise.all(pids.map(async (pid) => (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ')))
  return pids.filter((_, i) => lines[i].includes(text))
}

interface Snooped {
  environ: Record<string, string>
  files: Record<string, string>
  dirs: Record<string, string>
  own: { uid: number, gid: number, groups: number[], home: string, state: string, tmpdir: string, writeState: string, writeTmp: string, readCode: string, writeCode: string, initEnviron: string, selfEnviron: string }
  self: Record<string, string>
}

test.serial('isolation: a service cannot read another service\'s environment (EACCES), even where it sees its processes', async (t) => {
  if (!needsUsers(t)) return
  // No PID namespace: the other service's pid is right there in /proc, and the kernel refuses.
  const c: Containment = { ...groupContainment(), users: true }
  const dir = await openDir(t)
  const data = join(dir, 'data')
  await mkdir(data)
  const users = new InstanceUsers(data, { first: 64000, last: 64100 }, quiet)
  await users.open()
  t.teardown(() => { users.close() })
  const start = async (service: string, script: string, args: string[], env: Record<string, string>): Promise<ManagedProcess> => {
    const stateDir = join(data, 'state', service)
    const codeDir = join(data, 'code', service)
    await mkdir(stateDir, { recursive: true, mode: 0o700 })
    await mkdir(codeDir, { recursive: true })
    await writeFile(join(codeDir, 'main.js'), script)
    const user = await users.prepare({ service, instance: `${service}-0`, stateDir, codeDir })
    const p = new ManagedProcess({ id: `${service}-0`, command: process.execPath, args: ['main.js', ...args], env, cwd: codeDir, logPath: join(dir, `${service}.log`), log: quiet, restart: { policy: 'never' }, stopGraceMs: 500, containment: c, user })
    t.teardown(async () => { await p.stop() })
    p.start()
    return p
  }
  const victim = await start('victim', 'setInterval(() => {}, 1000)', [], { ORIGIN_API_KEY: 'victim-0.secret' })
  const vpid = victim.status().pid!
  await waitFor(async () => (await readFile(`/proc/${vpid}/cmdline`, 'utf8')).includes('main.js'), { what: 'the victim to run its code' })
  const snoop = await start('snoop', [
    "const fs = require('fs')",
    "const r = (f) => { try { fs.readFileSync(f); return 'ok' } catch (err) { return err.code } }",
    'console.log(JSON.stringify({ other: r(`/proc/${process.argv[2]}/environ`), self: r(\'/proc/self/environ\') }))'
  ].join('\n'), [String(vpid)], {})
  const log = join(dir, 'snoop.log')
  const line = await waitFor(async () => /out (\{.*\})/.exec(await readLog(log).catch(() => ''))?.[1], { what: 'what the snoop got' })
  t.deepEqual(JSON.parse(line), { other: 'EACCES', self: 'ok' })
  await waitFor(() => snoop.status().state === 'stopped', { what: 'the snoop to exit' })
  t.not(await uidOf(vpid), 0)
  t.is(await uidOf(vpid), await users.uidFor('victim'))
  t.not(await users.uidFor('snoop'), await users.uidFor('victim'))
})

test.serial('isolation: a command health check runs as the instance\'s user; a pinned port below 1024 can still be bound', async (t) => {
  if (!needsUsers(t)) return
  const dir = await openDir(t)
  const data = join(dir, 'data')
  const stateDir = join(data, 'state', 'web-0')
  const codeDir = join(data, 'code', 'web')
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  await mkdir(codeDir, { recursive: true })
  const users = new InstanceUsers(data, { first: 64000, last: 64100 }, quiet)
  await users.open()
  t.teardown(() => { users.close() })
  const port = await freeLowPort()
  const user = await users.prepare({ service: 'web', instance: 'web-0', stateDir, codeDir, ports: [['main', port]] })
  const serve = `require('net').createServer().listen(${port}, '127.0.0.1', () => console.log('listening')).on('error', (e) => { console.log(e.code); process.exit(1) })`
  const p = new ManagedProcess({
    id: 'web-0', command: process.execPath, args: ['-e', serve], env: {}, cwd: codeDir, logPath: join(dir, 'web.log'), log: quiet,
    restart: { policy: 'never' }, stopGraceMs: 500, containment, user,
    // Passes only as the instance's user: the check writes where only that user can.
    health: { command: { command: '/bin/sh', args: ['-c', `test "$(id -u)" = ${user.uid} && touch "$HOME/checked"`] }, intervalMs: 100 }
  })
  t.teardown(async () => { await p.stop() })
  p.start()
  await waitFor(() => p.status().state === 'ready' || p.status().state === 'failed', { what: 'the health check to pass' })
  t.is(p.status().state, 'ready', p.status().reason)
  t.is((await stat(join(stateDir, 'checked'))).uid, user.uid)
  await waitFor(async () => / out listening/.test(await readLog(join(dir, 'web.log'))), { what: 'the instance to bind port ' + port })
  t.pass()
})

/** A port below 1024 nobody listens on at 127.0.0.1. */
async function freeLowPort (): Promise<number> {
  for (let port = 900; port < 1024; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
    if (free) return port
  }
  throw new Error('no free port below 1024')
}

test.serial('isolation: on a node, a service reaches neither the node\'s keys and data nor another service, and keeps its own directories and code', async (t) => {
  if (!needsUsers(t)) return
  const s = await specDirCluster(t)
  const open = await openDir(t)
  const targets = join(open, 'targets.json')
  await s.write('services/victim/main.js', await readFile(join(fixtures, 'isolation', 'victim.js'), 'utf8'))
  await s.write('services/snoop/main.js', await readFile(join(fixtures, 'isolation', 'snoop.js'), 'utf8'))
  await s.write('services/victim.json', { run: { command: 'node', args: ['services/victim/main.js'], env: { SECRET: 'hunter2' } }, placement: { kind: 'every' }, stopGraceMs: 500 })
  await s.write('services/snoop.json', { run: { command: 'node', args: ['services/snoop/main.js'], env: { TARGETS: targets } }, placement: { kind: 'every' }, stopGraceMs: 500 })
  const a = await s.c.start({ name: 'a', image: { specDir: s.dir } })
  const data = join(a.dir, 'data')
  await s.c.explainFailure(async () => {
    await s.waitInstances('a', 'victim', 1)
    await s.waitInstances('a', 'snoop', 1)
  })
  const [vpid] = await waitFor(async () => { const p = await running('node', 'services/victim/main.js'); return p.length === 1 ? p : undefined }, { what: 'the victim process' })
  const [spid] = await running('node', 'services/snoop/main.js')
  const users = JSON.parse(await readFile(join(data, 'users.json'), 'utf8')) as { services: Record<string, number> }
  t.is(await uidOf(vpid), users.services.victim, 'the victim runs as its uid')
  t.is(await uidOf(spid), users.services.snoop, 'the snoop runs as its uid')
  t.not(users.services.victim, users.services.snoop)
  for (const uid of Object.values(users.services)) t.true(uid >= 61000 && uid <= 65000)
  const victimState = join(data, 'state', 'victim@a')
  await waitFor(async () => await stat(join(victimState, 'secret.txt')).then(() => true, () => false), { what: 'the victim to write its secret' })
  const files = [join(s.c.keys, 'node.key'), join(a.dir, 'image.json'), join(data, 'node.log'), join(data, 'users.json'), join(data, 'logs', 'victim@a.log'), join(victimState, 'secret.txt')]
  const dirs = [data, join(data, 'logs'), join(data, 'state'), victimState, s.c.keys]
  await writeFile(targets, JSON.stringify({ environ: [vpid, a.proc.pid], files, dirs }))
  const log = join(data, 'logs', 'snoop@a.log')
  const got = JSON.parse(await waitFor(async () => / out snoop: (.*)/.exec(await readFile(log, 'utf8').catch(() => ''))?.[1], { what: 'what the snoop got' })) as Snooped
  t.log(JSON.stringify(got))
  // Another service's processes, the node's: not visible from its own PID namespace (ENOENT), or refused.
  for (const pid of [vpid, a.proc.pid]) t.true(['ENOENT', 'EACCES'].includes(got.environ[pid]), `environ of ${pid}: ${got.environ[pid]}`)
  t.is(got.own.initEnviron, 'EACCES', 'not even its own init (root)')
  for (const f of files) t.is(got.files[f], 'EACCES', f)
  for (const d of dirs) t.is(got.dirs[d], 'EACCES', d)
  // What is its own.
  t.is(got.own.uid, users.services.snoop)
  t.is(got.own.gid, users.services.snoop)
  t.deepEqual([...new Set(got.own.groups)], [users.services.snoop], 'no supplementary groups')
  t.is(got.own.home, got.own.state)
  t.is(got.own.writeState, 'ok')
  t.is(got.own.writeTmp, 'ok')
  t.is(got.own.readCode, 'ok')
  t.is(got.own.writeCode, 'EACCES', 'its code is read-only to it')
  t.is(got.own.selfEnviron, 'ok')
  t.deepEqual(got.self, { node: 'a', service: 'snoop', instance: 'snoop@a' })
  t.is((await stat(join(got.own.state, 'mine.txt'))).uid, users.services.snoop)
  t.regex(await a.log(), /each service runs as a user of its own/)
})

test.serial('isolation: redis-server runs with --dir $ORIGIN_STATE_DIR as its own user and saves there', async (t) => {
  if (!needsUsers(t)) return
  const redis = '/usr/bin/redis-server'
  if (await stat(redis).then(() => false, () => true)) { t.log(`skipped: no ${redis}`); t.pass(); return }
  const s = await specDirCluster(t)
  await s.write('services/redis.json', {
    run: { command: redis, args: ['--port', '$PORT', '--bind', '$ORIGIN_HOST', '--dir', '$ORIGIN_STATE_DIR', '--save', '', '--appendonly', 'no'] },
    placement: { kind: 'singleton' },
    health: { tcp: {}, intervalMs: 200 },
    stopGraceMs: 2000
  })
  const a = await s.c.start({ name: 'a', image: { specDir: s.dir } })
  const [inst] = await s.c.explainFailure(async () => await s.waitInstances('a', 'redis', 1))
  const users = JSON.parse(await readFile(join(a.dir, 'data', 'users.json'), 'utf8')) as { services: Record<string, number> }
  const address = inst.address ?? ''
  const [host, port] = [address.replace(/:\d+$/, ''), Number(/:(\d+)$/.exec(address)?.[1])]
  // redis-server rewrites its command line to `redis-server HOST:PORT`.
  const [pid] = await waitFor(async () => { const p = await withCommandLine(`redis-server ${address}`); return p.length === 1 ? p : undefined }, { what: 'the redis-server process' })
  t.is(await uidOf(pid), users.services.redis)
  const reply = await new Promise<string>((resolve, reject) => {
    const sock = net.connect(port, host, () => { sock.write('*1\r\n$4\r\nSAVE\r\n') })
    sock.once('data', (b) => { resolve(b.toString()); sock.end() })
    sock.once('error', reject)
  })
  t.is(reply, '+OK\r\n')
  const dump = await stat(join(a.dir, 'data', 'state', 'redis-0', 'dump.rdb'))
  t.is(dump.uid, users.services.redis)
})

test.serial('isolation: the state dir of a service is its own again after the node restarts (recorded uid)', async (t) => {
  if (!needsUsers(t)) return
  const s = await specDirCluster(t)
  await s.write('services/victim/main.js', await readFile(join(fixtures, 'isolation', 'victim.js'), 'utf8'))
  await s.write('services/victim.json', { run: { command: 'node', args: ['services/victim/main.js'] }, placement: { kind: 'every' }, stopGraceMs: 500 })
  const a = await s.c.start({ name: 'a', image: { specDir: s.dir } })
  await s.c.explainFailure(async () => await s.waitInstances('a', 'victim', 1))
  const before = await uidOf((await waitFor(async () => (await running('node', 'services/victim/main.js'))[0], { what: 'the victim process' })))
  const secret = join(a.dir, 'data', 'state', 'victim@a', 'secret.txt')
  await waitFor(async () => await stat(secret).then(() => true, () => false), { what: 'the victim to write its state' })
  await a.proc.stop()
  await s.c.start({ name: 'a', image: { specDir: s.dir }, address: a.address })
  await s.c.explainFailure(async () => await s.waitInstances('a', 'victim', 1))
  const pid = await waitFor(async () => (await running('node', 'services/victim/main.js'))[0], { what: 'the victim process again' })
  t.is(await uidOf(pid), before)
  t.is((await stat(secret)).uid, before)
})
