/**
 * Ordinary programs run unchanged: versions that restart only what changed, instances
 * replaced where they run, `$PORT` in args, executable files, addresses in `where()`,
 * secrets from the image, failing builds that back off and say so.
 */
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { startGitServer } from './helpers/git-server'
import { specDirCluster } from './helpers/spec-dir'
import { running, workingIn } from './helpers/procs'
import { waitFor } from './helpers/wait'

const procs = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs')
const sleeper = (placement: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  run: { command: 'node', args: [join(procs, 'sleeper.js')] }, placement, stopGraceMs: 1000, ...extra
})

test.serial('versions: a change to one service\'s files restarts only that service, and scaling 2 -> 3 restarts none', async (t) => {
  const s = await specDirCluster(t)
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image: { specDir: s.dir } })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.write('services/web/page.txt', 'one')
  await s.write('services/api/page.txt', 'one')
  await s.write('services/web.json', sleeper({ kind: 'replicas', count: 2 }))
  await s.write('services/api.json', sleeper({ kind: 'every' }))
  const web = await s.waitInstances('a', 'web', 2)
  const api = await s.waitInstances('a', 'api', 3)
  const started = (list: Array<{ instance: string, startedAt?: number }>): Record<string, number | undefined> => Object.fromEntries(list.map((i) => [i.instance, i.startedAt]))

  await s.write('services/web/page.txt', 'two')
  const webV2 = await waitFor(async () => {
    const now = await s.instances('a', 'web', 'ready')
    return now.length === 2 && now.every((i) => i.version !== web[0].version) ? now : undefined
  }, { what: 'web to run its new version' })
  t.not(webV2[0].version, web[0].version)
  t.deepEqual(started(await s.instances('a', 'api')), started(api), 'api did not restart')

  await s.write('services/web.json', sleeper({ kind: 'replicas', count: 3 }))
  const three = await s.waitInstances('a', 'web', 3)
  const before = started(webV2)
  for (const i of three.filter((x) => before[x.instance] !== undefined)) t.is(i.startedAt, before[i.instance], `${i.instance} kept running`)
  t.is(new Set(three.map((i) => i.version)).size, 1, 'the new replica runs the same version')
  t.deepEqual(started(await s.instances('a', 'api')), started(api), 'api still did not restart')
})

test.serial('versions: a changed singleton is replaced on the node that runs it, not moved back home after a failover', async (t) => {
  const s = await specDirCluster(t)
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image: { specDir: s.dir } })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.write('services/one.json', sleeper({ kind: 'singleton' }))
  const [home] = await s.waitInstances('a', 'one', 1)
  const watcher = ['a', 'b', 'c'].find((n) => n !== home.node) as string
  // The home node leaves; the singleton moves; the home node comes back on the same data dir.
  const node = s.c.node(home.node)
  node.proc.signal('SIGTERM')
  await node.proc.exited
  const [moved] = await waitFor(async () => { const r = await s.instances(watcher, 'one', 'ready'); return r.length === 1 && r[0].node !== home.node ? r : undefined }, { what: 'the singleton to move' })
  await s.c.start({ name: home.node, address: node.address, image: { specDir: s.dir } })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' }, { on: [watcher] })
  await s.write('services/one.json', sleeper({ kind: 'singleton' }, { run: { command: 'node', args: [join(procs, 'sleeper.js')], env: { CHANGED: '1' } } }))
  const [replaced] = await waitFor(async () => { const r = await s.instances(watcher, 'one', 'ready'); return r.length === 1 && r[0].version !== moved.version ? r : undefined }, { what: 'the new version to run' })
  t.is(replaced.node, moved.node, 'replaced where it ran, not on its rendezvous home')
})

test.serial('programs: $PORT and named ports in args, an executable script, bind, and the address in where()', async (t) => {
  const s = await specDirCluster(t)
  const a = await s.c.start({ name: 'a', image: { specDir: s.dir } })
  await s.write('services/files/start.sh', '#!/bin/sh\necho "args: $*"\nexec python3 -m http.server "$1" --bind "$2"\n', 0o755)
  await s.write('services/files.json', {
    run: { command: './start.sh', args: ['$PORT', '${ORIGIN_HOST}', 'admin=${PORT_ADMIN}', '$NOT_OURS'], cwd: 'services/files' },
    placement: { kind: 'singleton' },
    ports: { http: {}, admin: {} },
    health: { http: { path: '/' }, intervalMs: 200 },
    stopGraceMs: 1000
  })
  const [inst] = await s.waitInstances('a', 'files', 1)
  const host = a.address.split(':')[0]
  t.regex(inst.address ?? '', new RegExp(`^${host.replace(/\./g, '\\.')}:\\d+$`), 'reachable on the node\'s advertised host')
  t.is(inst.port, inst.ports?.http)
  t.not(inst.ports?.admin, inst.ports?.http)
  const res = await fetch(`http://${inst.address ?? ''}/start.sh`)
  t.is(res.status, 200, 'the program serves on the address where() gives')
  const client = await s.c.client('a')
  const where = await client.where('files')
  t.is(where.services[0].instances[0].address, inst.address, 'where() gives the address too')
  const log = await readFile(join(a.dir, 'data', 'logs', 'files-0.log'), 'utf8')
  t.regex(log, new RegExp(`args: ${inst.port ?? 0} ${host.replace(/\./g, '\\.')} admin=${inst.ports?.admin ?? 0} \\$NOT_OURS`))
  // A restart keeps the ports.
  await s.write('services/files.json', {
    run: { command: './start.sh', args: ['$PORT', '${ORIGIN_HOST}', 'admin=${PORT_ADMIN}', 'v2'], cwd: 'services/files' },
    placement: { kind: 'singleton' },
    ports: { http: {}, admin: {} },
    health: { http: { path: '/' }, intervalMs: 200 },
    stopGraceMs: 1000
  })
  const [again] = await waitFor(async () => { const r = await s.instances('a', 'files', 'ready'); return r.length === 1 && r[0].version !== inst.version ? r : undefined }, { what: 'the new version' })
  t.deepEqual(again.ports, inst.ports, 'the instance kept its ports across the restart')
})

test.serial('programs: env values from the image\'s secrets, placed only where the secret is; a missing one is unschedulable in words', async (t) => {
  const s = await specDirCluster(t)
  await s.c.start({ name: 'a', image: { specDir: s.dir } })
  // Only b's image carries the secret (an image's secrets/ folder sits beside its image.json).
  await mkdir(join(s.c.dir, 'b', 'secrets'), { recursive: true })
  await writeFile(join(s.c.dir, 'b', 'secrets', 'db-password'), 's3cret\n')
  const withSecret = await s.c.start({ name: 'b', image: { specDir: s.dir } })
  await s.c.waitForView({ a: 'alive', b: 'alive' })
  await s.write('services/app.json', {
    run: { command: 'sh', args: ['-c', 'echo "password is $PASSWORD"; exec sleep 1000'], env: { PASSWORD: { secret: 'db-password' } } },
    placement: { kind: 'singleton' },
    stopGraceMs: 500
  })
  await s.write('services/lost.json', { ...sleeper({ kind: 'singleton' }), run: { command: 'true', env: { X: { secret: 'nowhere' } } } })
  const [inst] = await s.waitInstances('a', 'app', 1)
  t.is(inst.node, 'b', 'only b carries the secret')
  const log = await waitFor(async () => { const l = await readFile(join(withSecret.dir, 'data', 'logs', 'app-0.log'), 'utf8').catch(() => ''); return l.includes(' out password is') ? l : undefined }, { what: 'the app to print its env' })
  t.regex(log, / out password is s3cret$/m, 'the process has the secret in its environment')
  t.notRegex(log, / origin .*s3cret/, 'a secret is never put on a command line (readable by every user) nor in the log')
  const client = await s.c.client('a')
  const nodes = await client.nodes()
  t.deepEqual(nodes.find((n) => n.id === 'b')?.secrets, ['db-password'], 'nodes say which secrets they carry (names only)')
  t.is(nodes.find((n) => n.id === 'a')?.certificate?.level, 'ok', 'and their certificate\'s expiry')
  const lost = (await s.services('a')).services.find((x) => x.name === 'lost')
  t.regex(lost?.unschedulable[0]?.reason ?? '', /needs the secret "nowhere", which no alive node's image carries/)
})

test.serial('programs: a failing build backs off, shows as the rollout\'s reason, and the old version keeps running', async (t) => {
  const s = await specDirCluster(t)
  const git = await startGitServer()
  t.teardown(async () => await git.stop())
  const w = await git.workdir()
  await w.write('app.sh', '#!/bin/sh\necho "app $1"\nexec sleep 1000\n')
  await chmod(join(w.dir, 'app.sh'), 0o755)
  await w.commit('an executable app')
  await w.push()
  const a = await s.c.start({ name: 'a', image: { specDir: s.dir } })
  const app = (build: string): Record<string, unknown> => ({ run: { command: './app.sh', args: ['v'] }, code: { repo: git.url, ref: 'main', build }, placement: { kind: 'singleton' }, stopGraceMs: 500 })
  await s.write('services/app.json', app('echo built'))
  const [running] = await s.waitInstances('a', 'app', 1)
  t.truthy(running, 'the executable bit of app.sh survived the checkout')
  await s.write('services/app.json', app('echo failing build; exit 3'))
  const stuck = await waitFor(async () => { const r = await s.instances('a', 'app'); return r[0]?.rollout !== undefined ? r[0] : undefined }, { what: 'the rollout to show as stuck' })
  t.regex(stuck.rollout ?? '', /build failed: exit 3; see .*build-app\.log/)
  t.is(stuck.state, 'ready', 'the old version keeps running')
  t.is(stuck.version, running.version)
  const requestsThen = git.requestsBy('origin-node/a')
  // Within a few seconds the backoff allows only a few attempts (it doubles from 2 s).
  await waitFor(async () => /retrying in \d+ s \(attempt [3-9]\)/.test((await s.instances('a', 'app'))[0]?.rollout ?? ''), { what: 'a third attempt', timeoutMs: 20_000 })
  const builds = ((await readFile(join(a.dir, 'data', 'logs', 'build-app.log'), 'utf8')).match(/failing build/g) ?? []).length
  t.true(builds >= 2 && builds <= 4, `${builds} builds in ~6 s, not hundreds`)
  t.true(git.requestsBy('origin-node/a') - requestsThen <= 12, 'a few requests to the code repo, not one per reconcile')
  const client = await s.c.client('a')
  t.regex(String((await client.services()).services[0]?.instances[0]?.rollout), /build failed/)
  const events = await client.events({ since: '10m' })
  const said = (events ?? []).map((e) => e.text).join('\n')
  t.regex(said, /build of app succeeded/, 'the journal has the first build')
  t.regex(said, /build of app failed: build failed: exit 3/, 'and the failing one')
  const spec = await client.spec()
  t.is(spec.rollout, 'waiting')
  t.regex(spec.waiting.map((w) => `${w.instance} ${w.reason}`).join('\n'), /app-0 build failed: exit 3/)
})

test.serial('programs: redis keeps its data in ORIGIN_STATE_DIR across a new version and a node restart', async (t) => {
  if (!existsSync('/usr/bin/redis-server')) { t.log('redis-server is not installed (apt-get install redis-server); skipped'); t.pass(); return }
  const s = await specDirCluster(t)
  const a = await s.c.start({ name: 'a', image: { specDir: s.dir } })
  const redis = (extra: Record<string, string>): Record<string, unknown> => ({
    run: { command: 'redis-server', args: ['--port', '$PORT', '--bind', '$ORIGIN_HOST', '--dir', '$ORIGIN_STATE_DIR', '--appendonly', 'yes', '--save', ''], env: extra },
    placement: { kind: 'singleton' },
    health: { tcp: {}, intervalMs: 200 },
    stopGraceMs: 2000
  })
  await s.write('services/redis.json', redis({}))
  const cli = (address: string, ...args: string[]): string => {
    const [host, port] = address.split(':')
    return execFileSync('redis-cli', ['-h', host, '-p', port, ...args], { encoding: 'utf8' }).trim()
  }
  const [first] = await s.waitInstances('a', 'redis', 1)
  t.is(cli(first.address ?? '', 'SET', 'greeting', 'hello'), 'OK')
  await s.write('services/redis.json', redis({ VERSION: '2' }))
  const [second] = await waitFor(async () => { const r = await s.instances('a', 'redis', 'ready'); return r.length === 1 && r[0].version !== first.version ? r : undefined }, { what: 'redis version 2' })
  t.is(cli(second.address ?? '', 'GET', 'greeting'), 'hello', 'the data survived a new version')
  a.proc.signal('SIGTERM')
  await a.proc.exited
  await s.c.start({ name: 'a', address: a.address, image: { specDir: s.dir } })
  const [third] = await s.waitInstances('a', 'redis', 1)
  t.is(cli(third.address ?? '', 'GET', 'greeting'), 'hello', 'the data survived a node restart')
})

/** A singleton that records, in its state dir, the node it was first started on, and says so at each start. */
const remembersBirth = (state: Record<string, unknown>): Record<string, unknown> => ({
  run: { command: 'sh', args: ['-c', '[ -f "$ORIGIN_STATE_DIR/born" ] || echo "$ORIGIN_NODE_ID" > "$ORIGIN_STATE_DIR/born"; echo "born on $(cat "$ORIGIN_STATE_DIR/born")"; exec sleep 1000'] },
  placement: { kind: 'singleton' },
  state,
  stopGraceMs: 500
})

/** What each start of the keeper on a node said, oldest first (under load a singleton may have run on a node before). */
async function birthsSaid (dir: string): Promise<string[]> {
  const log = await readFile(join(dir, 'data', 'logs', 'keeper-0.log'), 'utf8').catch(() => '')
  return [...log.matchAll(/ out born on (\S+)/g)].map((m) => m[1])
}

/** What the next start of the keeper on a node says, once it has said more than `before` times. */
async function nextBirth (dir: string, before: number, what: string): Promise<string> {
  return await waitFor(async () => { const b = await birthsSaid(dir); return b.length > before ? b[b.length - 1] : undefined }, { what })
}

for (const mode of ['local', 'migrate'] as const) {
  test.serial(`state: with ${mode}, a graceful move ${mode === 'local' ? 'starts empty and says so' : 'brings the directory along'}`, async (t) => {
    const s = await specDirCluster(t)
    for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image: { specDir: s.dir } })
    await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
    await s.write('services/keeper.json', remembersBirth({ mode }))
    const [first] = await s.waitInstances('a', 'keeper', 1)
    // Where its directory was made: here, unless it ran on another node before (placement avoids a node that says it is unhealthy, e.g. under load).
    const bornFirst = await nextBirth(s.c.node(first.node).dir, 0, 'the first start')
    if (mode === 'local') t.is(bornFirst, first.node)
    const watcher = ['a', 'b', 'c'].find((n) => n !== first.node) as string
    // Every other node has heard that it runs there (with its state generation) before it leaves.
    for (const n of ['a', 'b', 'c'].filter((x) => x !== first.node)) await s.waitInstances(n, 'keeper', 1)
    const before = Object.fromEntries(await Promise.all(['a', 'b', 'c'].map(async (n) => [n, (await birthsSaid(s.c.node(n).dir)).length] as const)))
    s.c.node(first.node).proc.signal('SIGTERM')
    const [moved] = await waitFor(async () => { const r = await s.instances(watcher, 'keeper', 'ready'); return r.length === 1 && r[0].node !== first.node ? r : undefined }, { what: 'the singleton to move' })
    const born = await nextBirth(s.c.node(moved.node).dir, before[moved.node], 'the moved instance to start')
    if (mode === 'migrate') {
      t.is(born, bornFirst, 'the state directory came along')
      t.regex(moved.stateNote ?? '', new RegExp(first.node))
    } else {
      t.is(born, moved.node, 'the moved instance starts empty')
      t.regex(moved.stateNote ?? '', /empty/)
      t.regex(moved.stateNote ?? '', new RegExp(first.node), 'and says where the state stayed')
    }
  })
}

test.serial('state: with replicate, the directory is there after kill -9 of its node, at most one interval old', async (t) => {
  const s = await specDirCluster(t)
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image: { specDir: s.dir } })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.write('services/keeper.json', remembersBirth({ mode: 'replicate', intervalMs: 300, copies: 2 }))
  const [first] = await s.waitInstances('a', 'keeper', 1)
  // Where its directory was made: here, unless it ran on another node before (placement avoids a node that says it is unhealthy, e.g. under load).
  const bornFirst = await nextBirth(s.c.node(first.node).dir, 0, 'the first start')
  const others = ['a', 'b', 'c'].filter((n) => n !== first.node)
  // Both other nodes hold a copy before the kill.
  const holdsCopy = async (n: string): Promise<boolean> => (await readdir(join(s.c.node(n).dir, 'data', 'state-copies'), { recursive: true }).catch(() => [] as string[])).some((f) => f.endsWith('born'))
  await waitFor(async () => (await Promise.all(others.map(holdsCopy))).every(Boolean), { what: 'copies on the other nodes' })
  const before = Object.fromEntries(await Promise.all(others.map(async (n) => [n, (await birthsSaid(s.c.node(n).dir)).length] as const)))
  s.c.node(first.node).proc.signal('SIGKILL')
  const [moved] = await waitFor(async () => { const r = await s.instances(others[0], 'keeper', 'ready'); return r.length === 1 && r[0].node !== first.node ? r : undefined }, { what: 'the singleton to run elsewhere', timeoutMs: 20_000 })
  t.log(moved.stateNote)
  const born = await nextBirth(s.c.node(moved.node).dir, before[moved.node], 'the restored instance to start')
  if (born !== bornFirst) t.log((await s.c.node(moved.node).log()).split('\n').filter((l) => /state|copy|snapshot/.test(l)).join('\n'), (await s.c.node(first.node).log()).split('\n').filter((l) => /state|copy|snapshot/.test(l)).join('\n'))
  t.is(born, bornFirst, 'restored from the snapshot')
  t.regex(moved.stateNote ?? '', /snapshot/)
  t.log(moved.stateNote)
})

test.serial('containment: after kill -9 of a node, nothing its instances started is left, sh -c without exec and nginx workers included', async (t) => {
  if (!existsSync('/usr/sbin/nginx')) { t.log('nginx is not installed (apt-get install nginx-light); skipped'); t.pass(); return }
  const s = await specDirCluster(t)
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image: { specDir: s.dir } })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  // nginx as a team would run it: a config template filled in at start, master and workers.
  await s.write('services/web/nginx.conf', [
    'worker_processes 2;', 'error_log stderr;', 'pid STATE/nginx.pid;', 'events {}',
    'http {', '  access_log off;', '  client_body_temp_path STATE/body; proxy_temp_path STATE/proxy; fastcgi_temp_path STATE/fcgi; uwsgi_temp_path STATE/uwsgi; scgi_temp_path STATE/scgi;',
    '  server { listen HOST:PORT; location / { return 200 "hello from NODE\\n"; } }', '}', ''
  ].join('\n'))
  await s.write('services/web/start.sh', '#!/bin/sh\nsed -e "s|STATE|$ORIGIN_STATE_DIR|g; s|HOST|$ORIGIN_HOST|; s|PORT|$PORT|; s|NODE|$ORIGIN_NODE_ID|" nginx.conf > "$ORIGIN_STATE_DIR/nginx.conf"\nexec nginx -c "$ORIGIN_STATE_DIR/nginx.conf" -g "daemon off;"\n', 0o755)
  await s.write('services/web.json', { run: { command: './start.sh', cwd: 'services/web' }, placement: { kind: 'replicas', count: 2 }, health: { http: { path: '/' }, intervalMs: 200 }, stopGraceMs: 2000 })
  // A singleton the natural way: sh -c with a background child and no exec.
  await s.write('services/one.json', { run: { command: 'sh', args: ['-c', `sleep 1000 & python3 -m http.server $PORT --bind $ORIGIN_HOST --directory ${s.dir}`] }, placement: { kind: 'singleton' }, health: { tcp: {}, intervalMs: 200 }, stopGraceMs: 1000 })
  const web = await s.waitInstances('a', 'web', 2)
  const [one] = await s.waitInstances('a', 'one', 1)
  t.is((await (await fetch(`http://${web[0].address ?? ''}/`)).text()).trim(), `hello from ${web[0].node}`)
  // The victim runs the singleton and, if placement allows, a web replica.
  const victim = s.c.node(one.node)
  const code = join(victim.dir, 'data')
  const before = await workingIn(code)
  t.true(before.length >= 3, `the victim runs several processes (${before.length})`)
  const watcher = ['a', 'b', 'c'].find((n) => n !== one.node) as string
  victim.proc.signal('SIGKILL')
  await victim.proc.exited
  await waitFor(async () => (await workingIn(code)).length === 0, { what: 'every process of the killed node\'s instances to be gone', timeoutMs: 5000 })
  const [moved] = await waitFor(async () => { const r = await s.instances(watcher, 'one', 'ready'); return r.length === 1 && r[0].node !== one.node ? r : undefined }, { what: 'the singleton to run elsewhere', timeoutMs: 20_000 })
  t.is((await running('python3', s.dir)).length, 1, 'the singleton runs exactly once')
  t.true(['dead', 'left'].includes((await s.c.view(watcher))[one.node]?.status ?? ''), 'the killed node is dead (or already downed)')
  t.not(moved.node, one.node)
  t.deepEqual(await workingIn(code), [], 'still nothing left of the killed node\'s instances')
})
