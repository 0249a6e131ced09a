import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { lstatSync, statSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type { Logger } from '../../node/log'
import { containCommand, probeContainment, type Containment } from '../../node/supervisor/contain'
import { InstanceUsers, instanceUsers, pickUid, protectNodeFiles } from '../../node/supervisor/users'
import { waitFor } from '../helpers/wait'

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet }
const root = process.getuid?.() === 0

async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-users-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

function needsRoot (t: ExecutionContext): boolean {
  if (root) return true
  t.log('skipped: needs root (chown to another uid); CI runs as root')
  t.pass()
  return false
}

const modeOf = (path: string): number => lstatSync(path).mode & 0o7777

test('users: a service\'s uid is a hash of its name in the range, the next free one on a clash', (t) => {
  const range = { first: 61000, last: 65000 }
  const web = pickUid('web', range, new Set())
  t.true(web !== undefined && web >= 61000 && web <= 65000)
  t.is(pickUid('web', range, new Set()), web, 'the same name gives the same uid')
  t.not(pickUid('redis', range, new Set()), web)
  t.is(pickUid('web', range, new Set([web!])), web! === 65000 ? 61000 : web! + 1, 'taken: the next one')
  t.is(pickUid('a', { first: 70000, last: 70002 }, new Set([70000, 70001, 70002])), undefined, 'a full range has none')
  t.is(pickUid('a', { first: 70000, last: 70002 }, new Set([70000, 70001])), 70002)
})

test('users: uids are recorded in the data dir and kept across restarts, one per service', async (t) => {
  const dir = await tempDir(t)
  const range = { first: 70000, last: 70003 }
  const a = new InstanceUsers(dir, range, quiet)
  await a.open()
  t.teardown(() => { a.close() })
  // Launches run concurrently: no two services may get the same uid.
  const uids = await Promise.all(['web', 'redis', 'agent', 'cron'].map(async (s) => await a.uidFor(s)))
  t.is(new Set(uids).size, 4)
  for (const uid of uids) t.true(uid >= 70000 && uid <= 70003)
  await t.throwsAsync(a.uidFor('one-too-many'), { message: /no free uid left in 70000-70003 for service one-too-many/ })
  const recorded = JSON.parse(await readFile(join(dir, 'users.json'), 'utf8')) as { services: Record<string, number> }
  t.deepEqual(recorded.services, { web: uids[0], redis: uids[1], agent: uids[2], cron: uids[3] })
  t.is(modeOf(join(dir, 'users.json')), 0o600)
  // A restart, even with another range, keeps what was given.
  const b = new InstanceUsers(dir, { first: 80000, last: 80010 }, quiet)
  await b.open()
  t.teardown(() => { b.close() })
  t.is(await b.uidFor('redis'), uids[1])
  t.true(await b.uidFor('new') >= 80000)
})

test('users: ids /etc/passwd gives to someone are never picked', async (t) => {
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '')
  const taken = passwd.split('\n').map((l) => Number(l.split(':')[2])).find((id) => Number.isInteger(id) && id >= 1000)
  if (taken === undefined) { t.log('skipped: no id of 1000 or more in /etc/passwd'); t.pass(); return }
  const users = new InstanceUsers(await tempDir(t), { first: taken, last: taken + 1 }, quiet)
  await users.open()
  t.teardown(() => { users.close() })
  t.is(await users.uidFor('x'), taken + 1)
})

test('users: not root (or no setpriv), instances run as the node\'s user', async (t) => {
  const c = { users: false } as unknown as Containment
  t.is(await instanceUsers({ containment: c, dataDir: await tempDir(t), log: quiet }), undefined)
})

test('users: a node that is not root says, in its one containment line, what it cannot guarantee', async (t) => {
  let c: Containment
  if (root) {
    // As `nobody`: the probe run by a node that is not root.
    const probe = `require(${JSON.stringify(join(__dirname, '..', '..', 'node', 'supervisor', 'contain.js'))}).probeContainment().then((c) => console.log(JSON.stringify(c)))`
    const out = await new Promise<string>((resolve, reject) => {
      execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, '-e', probe], { cwd: '/' }, (err, stdout) => { if (err === null) resolve(stdout); else reject(err) })
    })
    c = JSON.parse(out) as Containment
  } else {
    c = await probeContainment()
  }
  t.log(c.detail)
  t.false(c.users)
  t.regex(c.detail, /^[^\n]+; instances run as this node's user \(uid \d+, not root\), so (they can read|each can read the others' environment \(ORIGIN_API_KEY included\) and) every file this node can, its keys included$/)
})

test('users: the node\'s files are closed to others, the way to instances\' directories stays open', async (t) => {
  const top = await tempDir(t)
  const image = join(top, 'image')
  const data = join(image, 'data')
  await mkdir(join(data, 'state', 'web-0'), { recursive: true, mode: 0o700 })
  await mkdir(join(data, 'code', 'repos'), { recursive: true })
  await mkdir(join(data, 'logs'), { recursive: true })
  await mkdir(join(image, 'keys'), { recursive: true })
  await writeFile(join(data, 'node.log'), 'x\n', { mode: 0o644 })
  await writeFile(join(image, 'image.json'), '{"spec":{"token":"t"}}', { mode: 0o644 })
  await writeFile(join(image, 'keys', 'node.key'), 'k', { mode: 0o600 })
  await chmod(top, 0o700)
  await chmod(data, 0o755)
  await chmod(join(data, 'logs'), 0o755)
  await chmod(join(data, 'state'), 0o755)
  await chmod(join(data, 'code'), 0o755)
  await chmod(join(data, 'code', 'repos'), 0o755)
  const said = await protectNodeFiles(data)
  t.is(modeOf(top), 0o701, 'search only, added')
  t.regex(said.join('\n'), /^gave others search permission \(not listing\) on /)
  t.true(said.join('\n').includes(`${top} (now 0701)`), said.join('\n'))
  t.is(modeOf(data), 0o711)
  t.is(modeOf(join(data, 'node.log')), 0o640)
  t.is(modeOf(join(data, 'logs')), 0o750)
  t.is(modeOf(join(data, 'state')), 0o751)
  t.is(modeOf(join(data, 'code')), 0o751)
  t.is(modeOf(join(data, 'code', 'repos')), 0o750)
  t.is(modeOf(join(image, 'image.json')), 0o640)
  t.is(modeOf(join(image, 'keys')), 0o750)
  t.is(modeOf(join(image, 'keys', 'node.key')), 0o600, 'a private key is 0600 already')
  t.is(modeOf(join(data, 'state', 'web-0')), 0o700, 'instance dirs are left to the state layer')
  // A second pass changes nothing and says nothing.
  t.deepEqual(await protectNodeFiles(data), [])
})

test('users: what appears in the data dir later (a rotated node.log) is closed at once', async (t) => {
  const data = join(await tempDir(t), 'data')
  await mkdir(data)
  const users = new InstanceUsers(data, { first: 70000, last: 70010 }, quiet)
  await users.open()
  t.teardown(() => { users.close() })
  // As RotatingLog makes a new one: created with the default mode (0644 with umask 022).
  await writeFile(join(data, 'node.log'), 'new\n', { mode: 0o644 })
  await waitFor(() => modeOf(join(data, 'node.log')) === 0o640, { what: 'node.log closed to others' })
  t.pass()
})

test('users: before a launch, the state dir, a fresh temp dir and the code tree are made the service\'s', async (t) => {
  if (!needsRoot(t)) return
  const data = join(await tempDir(t), 'data')
  const stateDir = join(data, 'state', 'web-0')
  const codeDir = join(data, 'code', 'web-spec-1')
  await mkdir(join(stateDir, 'sub'), { recursive: true, mode: 0o700 })
  await mkdir(codeDir, { recursive: true })
  await writeFile(join(codeDir, 'main.js'), '')
  // A restored copy arrives owned by root; a link the service left must not carry the chown elsewhere.
  await writeFile(join(stateDir, 'sub', 'dump.rdb'), 'x')
  const outside = join(data, 'outside')
  await writeFile(outside, 'root only', { mode: 0o600 })
  await symlink(outside, join(stateDir, 'link'))
  const users = new InstanceUsers(data, { first: 70000, last: 70010 }, quiet)
  await users.open()
  t.teardown(() => { users.close() })
  const u = await users.prepare({ service: 'web', instance: 'web-0', stateDir, codeDir })
  t.is(u.uid, await users.uidFor('web'))
  t.is(u.gid, u.uid)
  t.is(u.home, stateDir)
  for (const p of [stateDir, join(stateDir, 'sub'), join(stateDir, 'sub', 'dump.rdb')]) {
    t.is(statSync(p).uid, u.uid, `${p} is the service's`)
    t.is(statSync(p).gid, u.gid)
  }
  t.is((await stat(outside)).uid, 0, 'the link was not followed')
  t.is(modeOf(stateDir), 0o700)
  t.is(statSync(codeDir).uid, 0, 'the code stays root\'s (not writable)')
  t.is(statSync(codeDir).gid, u.gid, 'and readable by the service alone')
  t.is(modeOf(codeDir), 0o750)
  t.is(statSync(u.tmpDir!).uid, u.uid)
  t.is(modeOf(u.tmpDir!), 0o700)
  await writeFile(join(u.tmpDir!, 'leftover'), '')
  t.is(u.lowPorts, undefined)
  const again = await users.prepare({ service: 'web', instance: 'web-0', stateDir, codeDir, ports: [['main', 8080], ['http', 80]] })
  t.is(again.tmpDir, u.tmpDir)
  t.true(again.lowPorts, 'a pinned port below 1024 can still be bound')
  await t.throwsAsync(stat(join(u.tmpDir!, 'leftover')), { code: 'ENOENT' }, 'the temp dir starts empty')
})

test('users: the command drops to the user between the init and the command (namespace), or in the one setpriv (group)', (t) => {
  const user = { uid: 61234, gid: 61234 }
  const ns: Containment = { pidNamespace: true, detail: '', setpriv: '/usr/bin/setpriv', unshare: ['/usr/bin/unshare', '--pid', '--fork'], sh: '/bin/sh', env: '/usr/bin/env', users: true }
  const a = containCommand(ns, 'a=b', ['x'], user)
  t.is(a.command, '/usr/bin/setpriv')
  t.deepEqual(a.args.slice(0, 3), ['--pdeathsig', 'KILL', '--'], 'the outer setpriv stays root: its parent-death signal is not cleared')
  const init = a.args.indexOf('origin-init')
  t.deepEqual(a.args.slice(init + 1), ['/usr/bin/env', '--default-signal=INT,QUIT', '/usr/bin/setpriv', '--reuid=61234', '--regid=61234', '--clear-groups', '--no-new-privs', '--', 'a=b', 'x'])
  const group: Containment = { pidNamespace: false, detail: '', setpriv: '/usr/bin/setpriv', sh: '/bin/sh', users: true }
  t.deepEqual(containCommand(group, 'node', ['s.js'], user), { command: '/usr/bin/setpriv', args: ['--pdeathsig', 'KILL', '--reuid=61234', '--regid=61234', '--clear-groups', '--no-new-privs', '--', 'node', 's.js'] })
  t.throws(() => containCommand({ ...group, setpriv: undefined }, 'node', [], user), { message: /without setpriv/ })
  // A pinned port below 1024: the one capability to bind it, and no other.
  t.deepEqual(containCommand(group, 'node', [], { ...user, lowPorts: true }).args.slice(2, -2), ['--reuid=61234', '--regid=61234', '--clear-groups', '--inh-caps=+net_bind_service', '--ambient-caps=+net_bind_service', '--no-new-privs'])
})
