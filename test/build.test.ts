/**
 * `origin build` end to end: images built by the CLI from test keys, started as nothing but
 * a copied `origin-node` file in an empty directory (no checkout, no node_modules, no
 * Node.js flags), in Docker containers from the built Dockerfile, and their Kubernetes
 * YAML checked against the object schemas it claims.
 *
 * Builds take seconds each, so the file makes two images (A and B) once and the tests run
 * one after another.
 */
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import Ajv from 'ajv'
import { launchNode, cliPath, NODE_ENV, NODE_OPTIONS, type NodeProcess } from '../node/launch'
import { connectCluster, type Cluster } from '../repl/client'
import { fastMembership, freeAddress, makeKeys } from './helpers/cluster'
import { waitFor } from './helpers/wait'
import { busyboxPath, dockerSkipReason, importBusybox, startDockerd } from './helpers/dockerd'

const yaml = require('js-yaml') as { safeLoadAll: (text: string) => unknown[] }

interface Run { code: number, stdout: string, stderr: string }

async function run (command: string, args: string[], o: { env?: NodeJS.ProcessEnv, cwd?: string, timeoutMs?: number } = {}): Promise<Run> {
  return await new Promise((resolve, reject) => {
    execFile(command, args, { timeout: o.timeoutMs ?? 120_000, env: o.env ?? process.env, cwd: o.cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') { reject(err); return }
      resolve({ code: err === null ? 0 : err.code as number, stdout, stderr })
    })
  })
}

async function origin (...args: string[]): Promise<Run> {
  return await run(process.execPath, [cliPath, ...args])
}

const root = mkdtemp(join(os.tmpdir(), 'origin-build-'))
test.after.always(async () => { await rm(await root, { recursive: true, force: true }) })

interface Fixture {
  dir: string
  keys: string
  spec: string
  addresses: string[]
  a: { dir: string, serial: string, build: Run }
  b: { dir: string, serial: string }
}

/** Keys, a spec dir (cluster.ts: the evaluator must run inside the executable), image.json, and images A and B. */
const fixture: Promise<Fixture> = (async () => {
  const dir = await root
  const keys = await makeKeys(join(dir, 'keys'), 'imgtest')
  const spec = join(dir, 'spec')
  await mkdir(spec)
  await writeFile(join(spec, 'cluster.ts'), clusterTs([]))
  const addresses: string[] = []
  while (addresses.length < 3) {
    const a = await freeAddress()
    if (!addresses.includes(a)) addresses.push(a)
  }
  const config = join(dir, 'image.json')
  await writeFile(config, JSON.stringify({ cluster: 'imgtest', seeds: addresses, specDir: spec, membership: fastMembership, log: { level: 'debug' } }, null, 2))
  const buildA = await origin('build', '--keys', keys, '--config', config, '--out', join(dir, 'a'))
  if (buildA.code !== 0) throw new Error(`origin build failed (${buildA.code}):\n${buildA.stdout}\n${buildA.stderr}`)
  const buildB = await origin('build', '--keys', keys, '--config', config, '--out', join(dir, 'b'))
  if (buildB.code !== 0) throw new Error(`origin build failed (${buildB.code}):\n${buildB.stdout}\n${buildB.stderr}`)
  const serial = async (d: string): Promise<string> => (JSON.parse(await readFile(join(d, 'build.json'), 'utf8')) as { serial: string }).serial
  return { dir, keys, spec, addresses, a: { dir: join(dir, 'a'), serial: await serial(join(dir, 'a')), build: buildA }, b: { dir: join(dir, 'b'), serial: await serial(join(dir, 'b')) } }
})()
fixture.catch(() => {}) // each test awaits it and fails with the reason

function clusterTs (revoked: string[]): string {
  return `const revoked: string[] = ${JSON.stringify(revoked)}\nexport default { name: 'imgtest', minNodes: 1, revokedSerials: revoked, operators: { eval: ['op'] } }\n`
}

/** `origin-node` copied alone into a new empty directory, started with only PATH and `env`, its cwd that directory. */
async function startCopy (t: ExecutionContext, image: string, name: string, env: Record<string, string>): Promise<{ proc: NodeProcess, dir: string, log: () => Promise<string> }> {
  // The teardown first: when one of several starts fails, the test ends at once, and a copy
  // started after that must still be stopped (else it keeps its address from later tests).
  let dir: string | undefined
  let proc: NodeProcess | undefined
  t.teardown(async () => {
    await proc?.stop(3000)
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })
  dir = await mkdtemp(join(os.tmpdir(), `origin-copy-${name}-`))
  await copyFile(join(image, 'origin-node'), join(dir, 'origin-node'))
  const logFile = join(await root, `${name}-${Date.now()}.log`)
  proc = launchNode([], { executable: join(dir, 'origin-node'), cwd: dir, inheritEnv: false, env: { PATH: '/usr/bin:/bin', ...env }, logFile })
  return { proc, dir, log: async () => await readFile(logFile, 'utf8').catch(() => '') }
}

async function operator (t: ExecutionContext, keys: string, address: string): Promise<Cluster> {
  const c = await waitFor(async () => await connectCluster({ keys, as: 'op', address, timeoutMs: 2000 }), { what: `an operator connection to ${address}`, timeoutMs: 30_000 })
  t.teardown(() => { c.close() })
  return c
}

/** Waits until the node `c` is connected to sees `expected` (address -> status; `gone`: dead, left or removed). */
async function waitForView (c: Cluster, expected: Record<string, string>, timeoutMs = 30_000): Promise<void> {
  await waitFor(async () => {
    const rows = await c.nodes()
    return Object.entries(expected).every(([address, status]) => {
      const seen = rows.find((r) => r.address === address)?.status
      return status === 'gone' ? seen === undefined || seen === 'dead' || seen === 'left' : seen === status
    })
  }, { what: `a view of ${JSON.stringify(expected)}`, timeoutMs })
}

test.serial('build: origin build writes the image directory and says the size and serial', async (t) => {
  const f = await fixture
  const out = f.a.build.stdout
  for (const step of ['check', 'sign', 'bundle', 'blob', 'inject', 'forms']) t.regex(out, new RegExp(`^  ${step} `, 'm'))
  t.regex(out, new RegExp(`origin-node is [0-9.]+ MiB; node certificate serial ${f.a.serial} `))
  const files = ['origin-node', 'Dockerfile', '.dockerignore', 'README.md', 'image.json', 'build.json', 'keys', 'k8s', 'systemd']
  t.deepEqual((await readdir(f.a.dir)).sort(), files.sort())
  t.deepEqual((await readdir(join(f.a.dir, 'keys'))).sort(), ['ca.crt', 'node.crt', 'node.key'])
  t.deepEqual((await readdir(join(f.a.dir, 'k8s'))).sort(), ['daemonset.yaml', 'secret.yaml', 'service.yaml'])
  t.is((await stat(join(f.a.dir, 'keys', 'node.key'))).mode & 0o777, 0o600)
  t.is((await stat(join(f.a.dir, 'origin-node'))).mode & 0o777, 0o700, 'the executable holds node.key: only its owner reads it')
  const dockerfile = await readFile(join(f.a.dir, 'Dockerfile'), 'utf8')
  t.regex(dockerfile, /^COPY origin-node \/origin-node$/m)
  t.regex(dockerfile, /^ENTRYPOINT \["\/origin-node"\]$/m)
  t.regex(dockerfile, /^VOLUME \["\/var\/lib\/origin"\]$/m)
  t.true(dockerfile.split('\n').includes(`ENV NODE_OPTIONS="${NODE_OPTIONS}"`), 'the node\'s V8 flags')
  t.true(dockerfile.split('\n').includes('ENV MALLOC_ARENA_MAX=2'), 'two malloc arenas')
  t.true((await readFile(join(f.a.dir, 'k8s', 'daemonset.yaml'), 'utf8')).includes(`value: ${JSON.stringify(NODE_OPTIONS)}`))
  t.true((await readFile(join(f.a.dir, 'k8s', 'daemonset.yaml'), 'utf8')).includes('value: "2"'), 'MALLOC_ARENA_MAX, a string')
  t.deepEqual(NODE_ENV, { MALLOC_ARENA_MAX: '2' })
  const unit = await readFile(join(f.a.dir, 'systemd', 'origin-node.service'), 'utf8')
  for (const line of ['ExecStart=/usr/local/bin/origin-node', 'KillSignal=SIGTERM', 'Restart=always', 'Environment=ORIGIN_DATA=/var/lib/origin', `Environment="NODE_OPTIONS=${NODE_OPTIONS}"`, 'Environment=MALLOC_ARENA_MAX=2']) t.true(unit.split('\n').includes(line), line)
  t.regex(await readFile(join(f.a.dir, 'README.md'), 'utf8'), new RegExp(`serial\\s+\`${f.a.serial}\``))
  const info = await run(join(f.a.dir, 'origin-node'), ['--info'], { env: { PATH: '/usr/bin:/bin' } })
  t.is(info.code, 0)
  t.regex(info.stdout, new RegExp(`^certificate  ${f.a.serial} \\(image-\\d{8}-\\d{6}\\), expires on `, 'm'))
})

test.serial('build: two builds get their own node certificates', async (t) => {
  const f = await fixture
  t.regex(f.a.serial, /^[0-9A-F]+$/)
  t.not(f.a.serial, f.b.serial)
  t.not(await readFile(join(f.a.dir, 'keys', 'node.key'), 'utf8'), await readFile(join(f.b.dir, 'keys', 'node.key'), 'utf8'))
  t.is(await readFile(join(f.a.dir, 'keys', 'ca.crt'), 'utf8'), await readFile(join(f.keys, 'ca.crt'), 'utf8'))
})

test.serial('build: three copies of origin-node alone, each with only ORIGIN_LISTEN and ORIGIN_DATA, form one cluster', async (t) => {
  const f = await fixture
  // One after another: a copy being written while another copy's process is forked leaves
  // the fork holding it open for writing, and its exec then fails with ETXTBSY (a CI run).
  const nodes: Array<Awaited<ReturnType<typeof startCopy>>> = []
  for (const [i, address] of f.addresses.entries()) nodes.push(await startCopy(t, f.a.dir, `n${i + 1}`, { ORIGIN_LISTEN: address, ORIGIN_DATA: 'data' }))
  try {
    const c = await operator(t, f.keys, f.addresses[0])
    await waitForView(c, Object.fromEntries(f.addresses.map((a) => [a, 'alive'])))
    const rows = await c.nodes()
    t.is(rows.length, 3)
    // The spec's cluster.ts ran in the evaluator, which is the executable itself.
    await waitFor(async () => (await nodes[0].log()).includes('applied spec'), { what: 'the spec applied' })
    t.true(existsSync(join(nodes[0].dir, 'data', 'node.log')), 'ORIGIN_DATA is relative to the working directory')
    // The node transpiles an operator's code: TypeScript is in neither bundle, so its
    // diagnostic shows it came from the executable's asset. The evaluation runs on a thread
    // whose code is another asset, as the executable carries no files.
    const first = rows.find((r) => r.address === f.addresses[0])
    if (first === undefined) throw new Error(`${f.addresses[0]} is not among ${JSON.stringify(rows)}`)
    await t.throwsAsync(c.on(first.id).eval('const n: number = ;'), { message: /does not compile: Expression expected/ })
    t.is(await c.on(first.id).eval('const ids: string[] = Object.keys(node.members); ids.length'), 3)
    t.is(await c.on(first.id).eval('node.id'), first.id, 'a second evaluation on a kept thread')
  } catch (err) {
    for (const n of nodes) t.log((await n.log()).split('\n').slice(-30).join('\n'))
    throw err
  }
})

test.serial("build: revoking one build's serial drops that build's nodes only", async (t) => {
  const f = await fixture
  await writeFile(join(f.spec, 'cluster.ts'), clusterTs([]))
  const [a1, a2, b1] = f.addresses
  const nodes = [
    await startCopy(t, f.a.dir, 'a1', { ORIGIN_LISTEN: a1, ORIGIN_DATA: 'data' }),
    await startCopy(t, f.a.dir, 'a2', { ORIGIN_LISTEN: a2, ORIGIN_DATA: 'data' }),
    await startCopy(t, f.b.dir, 'b1', { ORIGIN_LISTEN: b1, ORIGIN_DATA: 'data' })
  ]
  try {
    const c = await operator(t, f.keys, b1)
    await waitForView(c, { [a1]: 'alive', [a2]: 'alive', [b1]: 'alive' })
    await writeFile(join(f.spec, 'cluster.ts'), clusterTs([f.a.serial]))
    await waitForView(c, { [a1]: 'gone', [a2]: 'gone', [b1]: 'alive' })
    await waitFor(async () => /certificate serial \S+ is revoked|revoked/.test(await nodes[2].log()), { what: "b1's log to say why" })
    t.true(nodes[2].proc.running)
  } catch (err) {
    for (const n of nodes) t.log((await n.log()).split('\n').filter((l) => !/ debug /.test(l)).slice(-20).join('\n'))
    throw err
  } finally {
    await writeFile(join(f.spec, 'cluster.ts'), clusterTs([]))
  }
})

test.serial('build: the builder refuses ca.key and operator keys in anything it puts into an image, and says why', async (t) => {
  const f = await fixture
  const secrets = join(f.dir, 'secrets-bad')
  await mkdir(secrets, { recursive: true })
  await writeFile(join(secrets, 'db-password'), 'hunter2\n')
  await copyFile(join(f.keys, 'ca.key'), join(secrets, 'ca.key'))
  const byName = await origin('build', '--keys', f.keys, '--config', join(f.dir, 'image.json'), '--out', join(f.dir, 'refused-1'), '--secrets', secrets)
  t.is(byName.code, 1)
  t.regex(byName.stderr, /refusing to put .*ca\.key into the image \(as secrets\/ca\.key\): it is the cluster CA's private key: whoever holds it can make certificates for any node or operator/)
  // Renamed, it is still recognised by what it is.
  await rm(join(secrets, 'ca.key'))
  await copyFile(join(f.keys, 'ca.key'), join(secrets, 'backup'))
  const byContent = await origin('build', '--keys', f.keys, '--config', join(f.dir, 'image.json'), '--out', join(f.dir, 'refused-2'), '--secrets', secrets)
  t.is(byContent.code, 1)
  t.regex(byContent.stderr, /refusing to put .*backup into the image \(as secrets\/backup\): it is the cluster CA's private key/)
  await rm(join(secrets, 'backup'))
  await copyFile(join(f.keys, 'operators', 'op.key'), join(secrets, 'tls-key'))
  const operatorKey = await origin('build', '--keys', f.keys, '--config', join(f.dir, 'image.json'), '--out', join(f.dir, 'refused-3'), '--secrets', secrets)
  t.is(operatorKey.code, 1)
  t.regex(operatorKey.stderr, /tls-key .*: it is the private key of operator op: operator keys open the REPL on the whole cluster/)
  for (const out of ['refused-1', 'refused-2', 'refused-3']) t.false(existsSync(join(f.dir, out, 'origin-node')), `${out} has no image`)
})

test.serial('build: a bad ORIGIN_ variable is refused by name; arguments are refused', async (t) => {
  const f = await fixture
  const exe = join(f.a.dir, 'origin-node')
  const bad = await run(exe, [], { env: { PATH: '/usr/bin:/bin', ORIGIN_LISTEN: '127.0.0.1:99999' } })
  t.is(bad.code, 1)
  t.regex(bad.stderr, /^origin-node: ORIGIN_LISTEN must be HOST:PORT with a port from 0 to 65535.*got "127\.0\.0\.1:99999"/)
  const seeds = await run(exe, [], { env: { PATH: '/usr/bin:/bin', ORIGIN_SEEDS: '127.0.0.1:7400 nope' } })
  t.regex(seeds.stderr, /ORIGIN_SEEDS must be .*entry 2, "nope"/)
  const args = await run(exe, ['--listen', '127.0.0.1:7400'], { env: { PATH: '/usr/bin:/bin' } })
  t.is(args.code, 2)
  t.regex(args.stderr, /takes no arguments.*come from ORIGIN_LISTEN/)
})

test.serial('build: with --keys-outside the executable carries no keys and takes ORIGIN_KEYS', async (t) => {
  const f = await fixture
  const out = join(f.dir, 'outside')
  const r = await origin('build', '--keys', f.keys, '--config', join(f.dir, 'image.json'), '--out', out, '--keys-outside')
  t.is(r.code, 0, r.stderr)
  const blob = await readFile(join(out, 'origin-node'))
  const nodeKey = (await readFile(join(out, 'keys', 'node.key'), 'utf8')).split('\n')[1]
  t.is(blob.indexOf(nodeKey), -1, 'node.key is not in the executable')
  const without = await run(join(out, 'origin-node'), [], { env: { PATH: '/usr/bin:/bin', ORIGIN_LISTEN: f.addresses[0], ORIGIN_DATA: join(out, 'data') } })
  t.is(without.code, 1)
  t.regex(without.stderr, /built with --keys-outside: set ORIGIN_KEYS/)
  const node = await startCopy(t, out, 'outside', { ORIGIN_LISTEN: f.addresses[0], ORIGIN_DATA: 'data', ORIGIN_KEYS: join(out, 'keys') })
  const c = await operator(t, f.keys, f.addresses[0])
  t.is((await c.nodes()).length, 1)
  await waitFor(async () => /node \S+ up at/.test(await node.log()), { what: 'the node to say it is up' })
  t.pass()
})

test.serial('build: the k8s YAML is a Secret, a headless Service and a DaemonSet as Kubernetes defines them', async (t) => {
  const f = await fixture
  const ajv = new Ajv({ allErrors: true, strict: false })
  const schemas = k8sSchemas()
  const seen: string[] = []
  for (const file of await readdir(join(f.a.dir, 'k8s'))) {
    for (const doc of yaml.safeLoadAll(await readFile(join(f.a.dir, 'k8s', file), 'utf8'))) {
      const o = doc as { apiVersion: string, kind: string }
      const schema = schemas[`${o.apiVersion}/${o.kind}`]
      t.truthy(schema, `${file}: no schema for ${o.apiVersion}/${o.kind}`)
      const validate = ajv.compile(schema)
      t.true(validate(doc), `${file}: ${ajv.errorsText(validate.errors)}`)
      seen.push(`${o.apiVersion}/${o.kind}`)
    }
  }
  t.deepEqual(seen.sort(), ['apps/v1/DaemonSet', 'v1/Secret', 'v1/Service'])
  const secret = yaml.safeLoadAll(await readFile(join(f.a.dir, 'k8s', 'secret.yaml'), 'utf8'))[0] as { data: Record<string, string> }
  t.deepEqual(Object.keys(secret.data).sort(), ['ca.crt', 'node.crt', 'node.key'])
  t.is(Buffer.from(secret.data['node.crt'], 'base64').toString(), await readFile(join(f.a.dir, 'keys', 'node.crt'), 'utf8'))
  const ds = yaml.safeLoadAll(await readFile(join(f.a.dir, 'k8s', 'daemonset.yaml'), 'utf8'))[0] as { spec: { selector: { matchLabels: object }, template: { metadata: { labels: object }, spec: { containers: Array<{ env: Array<{ name: string, value?: string }> }> } } } }
  t.deepEqual(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels, 'the selector matches the pods')
  const env = Object.fromEntries(ds.spec.template.spec.containers[0].env.map((e) => [e.name, e.value]))
  t.is(env.ORIGIN_KEYS, '/etc/origin/keys')
  t.is(env.ORIGIN_DISCOVERY_DNS, 'origin-imgtest.$(POD_NAMESPACE).svc.cluster.local', 'peers from the headless Service\'s records')
})

// ---- containers: a docker daemon of the test's own ----

const skipContainers = dockerSkipReason()
const containerTest = skipContainers === undefined ? test.serial : test.skip
if (skipContainers !== undefined) console.log(`build.test: containers test skipped: ${skipContainers}`)

/** A root filesystem from the host's own files: what origin-node and the programs the node runs (chown gives service users their dirs) link against. */
async function baseRootfs (dir: string, executable: string): Promise<string> {
  const rootfs = join(dir, 'rootfs')
  const programs = ['/bin/sh', '/bin/bash', '/usr/bin/prlimit', '/usr/bin/setpriv', '/usr/bin/unshare', '/usr/bin/sleep', '/usr/bin/chown', '/bin/chown'].filter((p) => existsSync(p))
  const files = new Set<string>(programs)
  for (const p of [executable, ...programs]) {
    const ldd = await run('ldd', [p])
    for (const m of ldd.stdout.matchAll(/(\/\S+)/g)) files.add(m[1])
  }
  for (const file of files) {
    const target = join(rootfs, file)
    await mkdir(join(target, '..'), { recursive: true })
    await copyFile(file, target) // follows links: the file itself, at the linked name
  }
  for (const d of ['tmp', 'etc', 'var/lib/origin']) await mkdir(join(rootfs, d), { recursive: true })
  await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\n')
  await run('chmod', ['1777', join(rootfs, 'tmp')])
  return rootfs
}

containerTest('build: three containers from DIR/Dockerfile on the host network form one cluster', async (t) => {
  t.timeout(600_000)
  const f = await fixture
  const dir = await mkdtemp(join('/tmp', 'odk-'))
  const daemon = await startDockerd(dir)
  const tag = `t${process.pid}`
  t.teardown(async () => {
    await daemon.docker('rm', '-f', '-v', `${tag}-1`, `${tag}-2`, `${tag}-3`).catch(() => undefined)
    await daemon.docker('rmi', '-f', `origin-node-imgtest:${tag}`, `origin-test-base:${tag}`).catch(() => undefined)
    await daemon.stop()
    await rm(dir, { recursive: true, force: true })
  })
  if (daemon.failure !== undefined) {
    t.log(`containers test skipped: dockerd cannot start here: ${daemon.failure}`)
    t.pass()
    return
  }
  const rootfs = await baseRootfs(dir, join(f.a.dir, 'origin-node'))
  const tar = join(dir, 'rootfs.tar')
  t.is((await run('tar', ['-C', rootfs, '-cf', tar, '.'])).code, 0)
  const imported = await daemon.docker('import', tar, `origin-test-base:${tag}`)
  t.is(imported.code, 0, imported.stderr)
  const built = await daemon.docker('build', '-q', '--build-arg', `BASE=origin-test-base:${tag}`, '-t', `origin-node-imgtest:${tag}`, f.a.dir)
  t.is(built.code, 0, built.stderr)
  await writeFile(join(f.spec, 'cluster.ts'), clusterTs([]))
  // The first as DIR/README.md says (privileged, the engine's socket, the data dir at the same host path); the others plain.
  const data = join(dir, 'data-1')
  await mkdir(data)
  const readme = await readFile(join(f.a.dir, 'README.md'), 'utf8')
  t.true(readme.includes(`    docker run -d --name origin-1 --privileged --network host -v /var/run/docker.sock:/var/run/docker.sock -v /var/lib/origin:/var/lib/origin origin-node-imgtest:${f.a.serial.slice(0, 12).toLowerCase()}\n`), 'DIR/README.md shows the docker run line')
  const documented = ['--privileged', '-v', `${daemon.socket}:/var/run/docker.sock`, '-v', `${data}:${data}`, '-e', `ORIGIN_DATA=${data}`]
  for (const [i, address] of f.addresses.entries()) {
    const start = async (flags: string[]): Promise<Run> => await daemon.docker('run', '-d', '--name', `${tag}-${i + 1}`, '--network', 'host', ...flags, '-e', `ORIGIN_LISTEN=${address}`, '-v', `${f.spec}:${f.spec}:ro`, `origin-node-imgtest:${tag}`)
    let r = await start(i === 0 ? documented : [])
    if (i === 0 && r.code !== 0 && /unable to apply caps/.test(r.stderr)) {
      // A nested engine cannot grant every capability; CAP_SYS_ADMIN is the one PID namespaces need (README).
      t.log(`--privileged refused here (${r.stderr.trim().split('\n')[0]}); running the first node with --cap-add SYS_ADMIN instead`)
      await daemon.docker('rm', '-f', `${tag}-1`)
      r = await start(documented.map((flag) => flag === '--privileged' ? '--cap-add=SYS_ADMIN' : flag))
    }
    t.is(r.code, 0, r.stderr)
  }
  try {
    const c = await operator(t, f.keys, f.addresses[1])
    await waitForView(c, Object.fromEntries(f.addresses.map((a) => [a, 'alive'])), 60_000)
    t.is((await c.nodes()).length, 3)
    // Privileged: PID namespaces for process services; the data on the host at the path the node uses inside.
    t.regex((await daemon.docker('logs', `${tag}-1`)).stderr, /instances run in their own PID namespace/)
    t.true((await readdir(data)).length > 0, 'the node writes its data dir at the same path on the host')
    t.is((await daemon.docker('exec', `${tag}-1`, '/bin/sh', '-c', 'test -S /var/run/docker.sock')).code, 0, 'the engine socket is inside')

    // Beside itself: a container service goes to the one node with the engine's socket, which
    // starts it through that socket as a sibling container on the host network.
    if (busyboxPath === undefined) t.log('container service beside the node skipped: no static busybox (busybox-static)')
    else {
      await importBusybox(daemon, dir, `origin-test-box:${tag}`, { 'www/index.html': 'beside the node\n' })
      const service = join(f.spec, 'services', 'box.json')
      await mkdir(join(f.spec, 'services'), { recursive: true })
      t.teardown(async () => { await rm(service, { force: true }) })
      await writeFile(service, JSON.stringify({ run: { image: `origin-test-box:${tag}`, args: ['/bin/busybox', 'httpd', '-f', '-p', '${ORIGIN_HOST}:$PORT', '-h', '/www'] }, placement: { kind: 'singleton' }, health: { http: { path: '/index.html' }, intervalMs: 200 }, stopGraceMs: 1000 }))
      const ready = await waitFor(async () => (await c.services()).services.find((x) => x.name === 'box')?.instances.find((i) => i.state === 'ready'), { what: 'the container service to be ready', timeoutMs: 120_000 })
      t.is(ready.node, (await c.nodes()).find((n) => n.address === f.addresses[0])?.id ?? '?', 'on the node with the engine\'s socket')
      const sibling = (await daemon.docker('ps', '--filter', 'label=origin.instance=box-0', '--format', '{{.Image}}')).stdout.trim()
      t.is(sibling, `origin-test-box:${tag}`, 'a sibling container of the node, in the same engine')
      t.is(await (await fetch(`http://${ready.address ?? ''}/index.html`)).text(), 'beside the node\n')
      await rm(service, { force: true })
      await waitFor(async () => (await daemon.docker('ps', '-a', '--filter', 'label=origin.instance=box-0', '-q')).stdout.trim() === '', { what: 'the node to remove its container once the service is gone', timeoutMs: 60_000 })
    }
  } catch (err) {
    for (const i of [1, 2, 3]) t.log((await daemon.docker('logs', '--tail', '20', `${tag}-${i}`)).stderr)
    throw err
  }
  // docker stop sends SIGTERM: the node leaves, and the others see it left.
  const stopped = await daemon.docker('stop', '-t', '20', `${tag}-3`)
  t.is(stopped.code, 0)
  const c = await operator(t, f.keys, f.addresses[0])
  await waitForView(c, { [f.addresses[2]]: 'gone' })
  t.is((await daemon.docker('inspect', '-f', '{{.State.ExitCode}}', `${tag}-3`)).stdout.trim(), '0')
})

// ---- Kubernetes object shapes ----

/**
 * The parts of the Kubernetes API's object schemas (core/v1 Secret and Service, apps/v1
 * DaemonSet, and what they contain) that the generated YAML uses, written as JSON Schema
 * from the API reference: every field of each object listed, unknown fields refused (as
 * `kubectl apply` with strict field validation does), types and required fields checked
 * for the fields origin writes. Fields origin never writes are accepted with any value.
 */
function k8sSchemas (): Record<string, object> {
  const any = {}
  const str = { type: 'string' }
  const int = { type: 'integer' }
  const bool = { type: 'boolean' }
  const intOrString = { anyOf: [{ type: 'integer' }, { type: 'string' }] }
  const strMap = { type: 'object', additionalProperties: { type: 'string' } }
  const closed = (properties: Record<string, object>, required: string[] = []): object => ({ type: 'object', additionalProperties: false, properties, required })
  const anyOf = (...names: string[]): Record<string, object> => Object.fromEntries(names.map((n) => [n, any]))
  const dnsLabel = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 }
  const dnsSubdomain = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$', maxLength: 253 }
  const labelValue = { type: 'string', pattern: '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$', maxLength: 63 }
  const labels = { type: 'object', additionalProperties: labelValue, propertyNames: { pattern: '^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$' } }
  const objectMeta = closed({
    name: dnsSubdomain, namespace: dnsLabel, labels, annotations: strMap,
    ...anyOf('creationTimestamp', 'deletionGracePeriodSeconds', 'deletionTimestamp', 'finalizers', 'generateName', 'generation', 'managedFields', 'ownerReferences', 'resourceVersion', 'selfLink', 'uid')
  })
  const port = { type: 'integer', minimum: 1, maximum: 65535 }
  const protocol = { enum: ['TCP', 'UDP', 'SCTP'] }
  const labelSelector = closed({ matchLabels: labels, matchExpressions: any })
  const envVar = closed({
    name: { type: 'string', minLength: 1 },
    value: str,
    valueFrom: closed({
      fieldRef: closed({ apiVersion: str, fieldPath: { enum: ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName', 'status.hostIP', 'status.hostIPs', 'status.podIP', 'status.podIPs'] } }, ['fieldPath']),
      ...anyOf('configMapKeyRef', 'fileKeyRef', 'resourceFieldRef', 'secretKeyRef')
    })
  }, ['name'])
  const containerPort = closed({ containerPort: port, hostIP: str, hostPort: port, name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 15 }, protocol }, ['containerPort'])
  const probe = closed({
    tcpSocket: closed({ host: str, port: intOrString }, ['port']),
    periodSeconds: { type: 'integer', minimum: 1 }, initialDelaySeconds: int, timeoutSeconds: int, successThreshold: int, failureThreshold: int, terminationGracePeriodSeconds: int,
    ...anyOf('exec', 'grpc', 'httpGet')
  })
  const volumeMount = closed({ name: str, mountPath: { type: 'string', minLength: 1 }, readOnly: bool, ...anyOf('mountPropagation', 'recursiveReadOnly', 'subPath', 'subPathExpr') }, ['name', 'mountPath'])
  const container = closed({
    name: dnsLabel, image: str, imagePullPolicy: { enum: ['Always', 'Never', 'IfNotPresent'] },
    env: { type: 'array', items: envVar }, ports: { type: 'array', items: containerPort },
    readinessProbe: probe, livenessProbe: probe, startupProbe: probe,
    volumeMounts: { type: 'array', items: volumeMount },
    args: { type: 'array', items: str }, command: { type: 'array', items: str },
    ...anyOf('envFrom', 'lifecycle', 'resizePolicy', 'resources', 'restartPolicy', 'restartPolicyRules', 'securityContext', 'stdin', 'stdinOnce', 'terminationMessagePath', 'terminationMessagePolicy', 'tty', 'volumeDevices', 'workingDir')
  }, ['name'])
  const volume = closed({
    name: dnsLabel,
    hostPath: closed({ path: { type: 'string', minLength: 1 }, type: { enum: ['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'] } }, ['path']),
    emptyDir: closed({ medium: str, sizeLimit: intOrString }),
    secret: closed({ secretName: dnsSubdomain, defaultMode: { type: 'integer', minimum: 0, maximum: 511 }, items: any, optional: bool }),
    ...anyOf('awsElasticBlockStore', 'azureDisk', 'azureFile', 'cephfs', 'cinder', 'configMap', 'csi', 'downwardAPI', 'ephemeral', 'fc', 'flexVolume', 'flocker', 'gcePersistentDisk', 'gitRepo', 'glusterfs', 'image', 'iscsi', 'nfs', 'persistentVolumeClaim', 'photonPersistentDisk', 'portworxVolume', 'projected', 'quobyte', 'rbd', 'scaleIO', 'storageos', 'vsphereVolume')
  }, ['name'])
  const podSpec = closed({
    containers: { type: 'array', items: container, minItems: 1 },
    volumes: { type: 'array', items: volume },
    hostNetwork: bool, hostPID: bool, hostIPC: bool,
    dnsPolicy: { enum: ['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None'] },
    terminationGracePeriodSeconds: { type: 'integer', minimum: 0 },
    restartPolicy: { enum: ['Always', 'OnFailure', 'Never'] },
    ...anyOf('activeDeadlineSeconds', 'affinity', 'automountServiceAccountToken', 'dnsConfig', 'enableServiceLinks', 'ephemeralContainers', 'hostAliases', 'hostUsers', 'hostname', 'hostnameOverride', 'imagePullSecrets', 'initContainers', 'nodeName', 'nodeSelector', 'os', 'overhead', 'preemptionPolicy', 'priority', 'priorityClassName', 'readinessGates', 'resourceClaims', 'resources', 'runtimeClassName', 'schedulerName', 'schedulingGates', 'securityContext', 'serviceAccount', 'serviceAccountName', 'setHostnameAsFQDN', 'shareProcessNamespace', 'subdomain', 'tolerations', 'topologySpreadConstraints', 'workloadRef')
  }, ['containers'])
  const typeMeta = (apiVersion: string, kind: string): Record<string, object> => ({ apiVersion: { const: apiVersion }, kind: { const: kind }, metadata: objectMeta })
  return {
    'v1/Secret': closed({
      ...typeMeta('v1', 'Secret'),
      type: str, immutable: bool,
      data: { type: 'object', additionalProperties: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' }, propertyNames: { pattern: '^[-._a-zA-Z0-9]+$' } },
      stringData: strMap
    }, ['apiVersion', 'kind', 'metadata']),
    'v1/Service': closed({
      ...typeMeta('v1', 'Service'),
      spec: closed({
        clusterIP: str, publishNotReadyAddresses: bool, selector: strMap,
        type: { enum: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] },
        ports: { type: 'array', items: closed({ name: dnsLabel, port, targetPort: intOrString, protocol, nodePort: port, appProtocol: str }, ['port']) },
        ...anyOf('allocateLoadBalancerNodePorts', 'clusterIPs', 'externalIPs', 'externalName', 'externalTrafficPolicy', 'healthCheckNodePort', 'internalTrafficPolicy', 'ipFamilies', 'ipFamilyPolicy', 'loadBalancerClass', 'loadBalancerIP', 'loadBalancerSourceRanges', 'sessionAffinity', 'sessionAffinityConfig', 'trafficDistribution')
      }),
      status: any
    }, ['apiVersion', 'kind', 'metadata']),
    'apps/v1/DaemonSet': closed({
      ...typeMeta('apps/v1', 'DaemonSet'),
      spec: closed({
        selector: labelSelector,
        template: closed({ metadata: objectMeta, spec: podSpec }),
        updateStrategy: closed({ type: { enum: ['RollingUpdate', 'OnDelete'] }, rollingUpdate: closed({ maxUnavailable: intOrString, maxSurge: intOrString }) }),
        minReadySeconds: int, revisionHistoryLimit: int
      }, ['selector', 'template']),
      status: any
    }, ['apiVersion', 'kind', 'metadata'])
  }
}
