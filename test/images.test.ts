/**
 * Where a container service's image comes from (node/runtime/images.ts), against a real
 * dockerd of the test's own: an image already present, a tarball in the code tree, a
 * Dockerfile in the code tree (also one prepared by the supervisor's CodeCache from a git
 * repo at a ref). Images are made locally from a static busybox: no registry is reached.
 */
import test, { type ExecutionContext } from 'ava'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import Docker from 'dockerode'
import { OriginError } from '../node/errors'
import { createLogger, silentLogger, type Logger } from '../node/log'
import { ensureImage } from '../node/runtime/images'
import { badTreePath, imageRepository, imageSpecProblem, imageTag, loadedImages, progressLine } from '../node/runtime/images-names'
import { CodeCache } from '../node/supervisor/code'
import type { ServiceSpec } from '../node/desired/types'
import { dockerSkipReason, importBusybox, startDockerd, type Daemon } from './helpers/dockerd'
import { waitFor } from './helpers/wait'
import { startGitServer } from './helpers/git-server'

// ---- pure parts: names, paths, the engine's progress lines ----

test('images: a service\'s images are origin/<service>, folded to docker\'s rules without collisions', (t) => {
  t.is(imageRepository('web'), 'origin/web')
  t.is(imageRepository('my-api2'), 'origin/my-api2')
  t.regex(imageRepository('Web'), /^origin\/web-[0-9a-f]{8}$/)
  t.not(imageRepository('Web'), imageRepository('web'))
  t.regex(imageRepository('a..b_'), /^origin\/a-b-[0-9a-f]{8}$/)
})

test('images: the tag changes with the code version and with the recipe, and stays a valid tag', (t) => {
  const a = imageTag('3f2a91c0d4e5', { build: {} })
  t.regex(a, /^3f2a91c0d4e5-[0-9a-f]{6}$/)
  t.is(imageTag('3f2a91c0d4e5', { build: { dockerfile: 'Dockerfile' } }), a, 'the default Dockerfile is the same recipe')
  t.not(imageTag('3f2a91c0d4e6', { build: {} }), a)
  t.not(imageTag('3f2a91c0d4e5', { build: { dockerfile: 'other/Dockerfile' } }), a)
  t.not(imageTag('3f2a91c0d4e5', { load: 'image.tar' }), a)
  for (const v of ['spec-0123456789abcdef', '../weird version', 'x'.repeat(200), '-lead']) t.regex(imageTag(v, { build: {} }), /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/)
})

test('images: paths in the spec must name a file inside the code tree', (t) => {
  t.is(badTreePath('image.tar'), undefined)
  t.is(badTreePath('docker/Dockerfile'), undefined)
  t.is(badTreePath('a/../image.tar'), undefined)
  t.regex(badTreePath('../image.tar') ?? '', /leaves the code tree/)
  t.regex(badTreePath('a/../../x') ?? '', /leaves the code tree/)
  t.regex(badTreePath('/etc/passwd') ?? '', /absolute/)
  t.regex(badTreePath('.') ?? '', /code tree itself/)
  t.regex(imageSpecProblem({}) ?? '', /none of ref, load and build/)
  t.regex(imageSpecProblem({ load: 'a.tar', build: {} }) ?? '', /both load and build/)
  t.regex(imageSpecProblem({ ref: 'redis 7' }) ?? '', /not an image name/)
  t.regex(imageSpecProblem({ ref: 'x@sha256:00', build: {} }) ?? '', /digest/)
  t.is(imageSpecProblem({ ref: 'registry.local:5000/team/redis:7' }), undefined)
})

test('images: progress lines give text for the log, or the error that ended the stream', (t) => {
  t.deepEqual(progressLine('{"stream":"Step 1/2 : FROM base\\n"}'), { text: 'Step 1/2 : FROM base\n' })
  t.deepEqual(progressLine('{"errorDetail":{"code":1,"message":"boom"},"error":"boom"}'), { error: 'boom' })
  t.deepEqual(progressLine('{"error":"bad"}'), { error: 'bad' })
  t.deepEqual(progressLine('{"aux":{"ID":"sha256:1"}}'), {})
  t.deepEqual(loadedImages('Loaded image: base:1\nLoaded image ID: sha256:abc\nother\n'), ['base:1', 'sha256:abc'])
})

// ---- against a real dockerd ----

const skip = dockerSkipReason()
const dockerTest = skip === undefined ? test.serial : test.serial.skip
if (skip !== undefined) test('images: engine tests skipped', (t) => { t.log(`skipped: ${skip}`); t.pass() })

interface Fixture { dir: string, daemon: Daemon, docker: Docker, base: string, skipped?: string }

const BASE = 'origin-imgtest-base:1'

let started: Promise<Fixture> | undefined
async function fixture (): Promise<Fixture> {
  started ??= (async () => {
    // Short path: the daemon's unix socket lives under it.
    const dir = await mkdtemp('/tmp/oim-')
    const daemon = await startDockerd(dir)
    const f: Fixture = { dir, daemon, docker: new Docker({ socketPath: daemon.socket }), base: BASE, skipped: daemon.failure }
    if (f.skipped !== undefined) return f
    await importRootfs(f, BASE, {})
    return f
  })()
  return await started
}

test.after.always(async () => {
  if (started === undefined) return
  const f = await started
  await f.daemon.stop()
  await rm(f.dir, { recursive: true, force: true })
})

/** `docker import` of a root filesystem holding the host's static busybox, linked as sh, cat, ... */
async function importRootfs (f: Fixture, name: string, extra: Record<string, string>): Promise<void> {
  await importBusybox(f.daemon, f.dir, name, extra)
}

/** The fixture, or undefined (test passed with a note) where dockerd could not start. */
async function engine (t: ExecutionContext): Promise<Fixture | undefined> {
  t.timeout(300_000)
  const f = await fixture()
  if (f.skipped !== undefined) {
    t.log(`skipped: dockerd cannot start here: ${f.skipped}`)
    t.pass()
    return undefined
  }
  return f
}

/** A logger whose lines a test can read. */
function recorder (): { log: Logger, lines: string[] } {
  const lines: string[] = []
  return { log: createLogger('images', { level: 'debug', sinks: [{ write: (l) => lines.push(l) }] }), lines }
}

async function runImage (f: Fixture, image: string, ...cmd: string[]): Promise<string> {
  const r = await f.daemon.docker('run', '--rm', '--network', 'host', image, ...cmd)
  if (r.code !== 0) throw new Error(`docker run ${image}: ${r.stderr}`)
  return r.stdout
}

async function present (f: Fixture, name: string): Promise<boolean> {
  return (await f.daemon.docker('image', 'inspect', name)).code === 0
}

async function codeDir (f: Fixture, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(f.dir, 'code-'))
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true })
    await writeFile(join(dir, path), content)
  }
  return dir
}

dockerTest('images: an image present on the node is used as it is; a missing one is refused in words', async (t) => {
  const f = await engine(t)
  if (f === undefined) return
  const o = { service: 'cache', codeDir: f.dir, codeVersion: 'v1', buildLogPath: join(f.dir, 'logs', 'build-cache.log'), log: silentLogger, nodeId: 'n2' }
  t.is(await ensureImage(f.docker, { ref: f.base }, o), f.base)
  const err = await t.throwsAsync(ensureImage(f.docker, { ref: 'redis:7' }, o), { instanceOf: OriginError })
  t.is(err?.code, 'E_NOT_FOUND')
  t.is(err?.message, 'image redis:7 is not on node n2: load it, or give the service run.image.load / run.image.build; origin does not pull from registries')
})

dockerTest('images: a tarball in the code tree is loaded once per code version, tagged, and older versions removed', async (t) => {
  const f = await engine(t)
  if (f === undefined) return
  // An image the engine does not have any more, only as a `docker save` tarball.
  await importRootfs(f, 'imgtest-saved:1', { marker: 'from the tarball\n' })
  const code = await codeDir(f, {})
  t.is((await f.daemon.docker('save', '-o', join(code, 'image.tar'), 'imgtest-saved:1')).code, 0)
  t.is((await f.daemon.docker('rmi', 'imgtest-saved:1')).code, 0)
  t.false(await present(f, 'imgtest-saved:1'))

  const buildLogPath = join(f.dir, 'logs', 'build-saved.log')
  const { log, lines } = recorder()
  const o = { service: 'saved', codeDir: code, codeVersion: 'aaaaaaaaaaaa', buildLogPath, log }
  const name = await ensureImage(f.docker, { load: 'image.tar', ref: 'imgtest-saved:1' }, o)
  t.regex(name, /^origin\/saved:aaaaaaaaaaaa-[0-9a-f]{6}$/)
  t.is(await runImage(f, name, 'cat', '/marker'), 'from the tarball\n')
  t.true(await present(f, 'imgtest-saved:1'), 'the ref is tagged too')
  t.regex(await readFile(buildLogPath, 'utf8'), /Loaded image: imgtest-saved:1/)

  // Again for the same code version: the tag is there, nothing is loaded.
  t.is(await ensureImage(f.docker, { load: 'image.tar', ref: 'imgtest-saved:1' }, o), name)
  t.is((await readFile(buildLogPath, 'utf8')).match(/^--- .* loading image\.tar/gm)?.length, 1)

  // A new code version loads again, and the older tag (no container uses it) is removed.
  const next = await ensureImage(f.docker, { load: 'image.tar', ref: 'imgtest-saved:1' }, { ...o, codeVersion: 'bbbbbbbbbbbb' })
  t.not(next, name)
  t.is((await readFile(buildLogPath, 'utf8')).match(/^--- .* loading image\.tar/gm)?.length, 2)
  t.true(await present(f, next))
  t.false(await present(f, name))
  t.true(lines.some((l) => l.includes(`removed ${name}`)), lines.join('\n'))
})

dockerTest('images: a Dockerfile in the code tree is built once, even when two instances ask at once, into a runnable image', async (t) => {
  const f = await engine(t)
  if (f === undefined) return
  const code = await codeDir(f, {
    'hello.txt': 'hello from the build context\n',
    Dockerfile: `FROM ${f.base}\nCOPY hello.txt /\nRUN cat /hello.txt\nCMD ["cat", "/hello.txt"]\n`
  })
  const buildLogPath = join(f.dir, 'logs', 'build-web.log')
  const o = { service: 'web', codeDir: code, codeVersion: 'c0ffee123456', buildLogPath, log: silentLogger }
  // Two instances of the service, each with a client of its own to the node's engine.
  const [a, b] = await Promise.all([ensureImage(f.docker, { build: {} }, o), ensureImage(new Docker({ socketPath: f.daemon.socket }), { build: {} }, o)])
  t.is(a, b)
  t.regex(a, /^origin\/web:c0ffee123456-[0-9a-f]{6}$/)
  t.is(await runImage(f, a), 'hello from the build context\n')
  const text = await readFile(buildLogPath, 'utf8')
  t.is(text.match(/^--- .* building /gm)?.length, 1, 'built once')
  t.regex(text, /Step 3\/4 : RUN cat \/hello.txt\n/)
  t.regex(text, /hello from the build context\n/, 'the RUN step\'s output is in the log')
  // Later calls for the same version find the image.
  t.is(await ensureImage(f.docker, { build: {} }, o), a)
  t.is((await readFile(buildLogPath, 'utf8')).match(/^--- .* building /gm)?.length, 1)
})

dockerTest('images: a failing build names the service, the step and the log, and the log holds the output', async (t) => {
  const f = await engine(t)
  if (f === undefined) return
  const code = await codeDir(f, { 'docker/Dockerfile': `FROM ${f.base}\nRUN echo about to fail\nRUN false\n` })
  const buildLogPath = join(f.dir, 'logs', 'build-bad.log')
  const o = { service: 'bad', codeDir: code, codeVersion: 'deadbeef0000', buildLogPath, log: silentLogger }
  const err = await t.throwsAsync(ensureImage(f.docker, { build: { dockerfile: 'docker/Dockerfile' } }, o), { instanceOf: OriginError })
  t.is(err?.code, 'E_START_FAILED')
  t.is(err?.message, `build of image for bad failed at Step 3/3 : RUN false: The command '/bin/sh -c false' returned a non-zero code: 1; see ${buildLogPath}`)
  t.like(err?.data, { service: 'bad', logPath: buildLogPath })
  const text = await readFile(buildLogPath, 'utf8')
  t.regex(text, /about to fail\n/)
  t.regex(text, /ERROR: The command '\/bin\/sh -c false' returned a non-zero code: 1/)
  t.false(await present(f, `${imageRepository('bad')}:${imageTag('deadbeef0000', { build: { dockerfile: 'docker/Dockerfile' } })}`))

  const missing = await t.throwsAsync(ensureImage(f.docker, { build: {} }, o), { instanceOf: OriginError })
  t.is(missing?.message, `run.image.build.dockerfile of bad: Dockerfile is not in the code tree (${code})`)
})

dockerTest('images: a build that hangs is stopped at the time bound, naming the step, and leaves no container', async (t) => {
  const f = await engine(t)
  if (f === undefined) return
  const code = await codeDir(f, { Dockerfile: `FROM ${f.base}\nRUN sleep 300\n` })
  const buildLogPath = join(f.dir, 'logs', 'build-slow.log')
  const o = { service: 'slow', codeDir: code, codeVersion: 'v1', buildLogPath, log: silentLogger, timeoutMs: 3000 }
  const began = Date.now()
  const err = await t.throwsAsync(ensureImage(f.docker, { build: {} }, o), { instanceOf: OriginError })
  t.true(Date.now() - began < 30_000)
  t.is(err?.message, `build of image for slow failed at Step 2/2 : RUN sleep 300: it did not finish in 3 s and was stopped; see ${buildLogPath}`)
  t.regex(await readFile(buildLogPath, 'utf8'), /ERROR: it did not finish in 3 s and was stopped/)
  await waitFor(async () => (await f.daemon.docker('ps', '-aq')).stdout.trim() === '', { what: 'the build container to be gone', timeoutMs: 30_000 })
  t.pass()
})

dockerTest('images: a tarball of several images needs ref to say which one; one untagged image needs none', async (t) => {
  const f = await engine(t)
  if (f === undefined) return
  await importRootfs(f, 'imgtest-two:a', { marker: 'a\n' })
  await importRootfs(f, 'imgtest-two:b', { marker: 'b\n' })
  const code = await codeDir(f, {})
  t.is((await f.daemon.docker('save', '-o', join(code, 'two.tar'), 'imgtest-two:a', 'imgtest-two:b')).code, 0)
  const id = (await f.daemon.docker('image', 'inspect', '-f', '{{.Id}}', 'imgtest-two:b')).stdout.trim()
  t.is((await f.daemon.docker('save', '-o', join(code, 'untagged.tar'), id)).code, 0)
  const buildLogPath = join(f.dir, 'logs', 'build-two.log')
  const o = { service: 'two', codeDir: code, codeVersion: 'v1', buildLogPath, log: silentLogger }
  const err = await t.throwsAsync(ensureImage(f.docker, { load: 'two.tar' }, o), { instanceOf: OriginError })
  t.is(err?.message, `loading the image of two from two.tar failed: it held 2 images (imgtest-two:a, imgtest-two:b); give run.image.ref naming the one to run; see ${buildLogPath}`)
  t.is(await runImage(f, await ensureImage(f.docker, { load: 'two.tar', ref: 'imgtest-two:b' }, o), 'cat', '/marker'), 'b\n')
  t.is(await runImage(f, await ensureImage(f.docker, { load: 'untagged.tar' }, { ...o, service: 'one' }), 'cat', '/marker'), 'b\n')
})

dockerTest('images: a path that leaves the code tree is refused, also through a symbolic link', async (t) => {
  const f = await engine(t)
  if (f === undefined) return
  const code = await codeDir(f, { 'Dockerfile': `FROM ${f.base}\n` })
  await writeFile(join(f.dir, 'outside.tar'), 'not yours')
  await symlink(join(f.dir, 'outside.tar'), join(code, 'image.tar'))
  await symlink('../outside.tar', join(code, 'Dockerfile.up'))
  const o = { service: 'esc', codeDir: code, codeVersion: 'v1', buildLogPath: join(f.dir, 'logs', 'build-esc.log'), log: silentLogger }
  const cases: Array<[Parameters<typeof ensureImage>[1], RegExp]> = [
    [{ load: '../outside.tar' }, /^run.image of esc load path "..\/outside.tar" leaves the code tree$/],
    [{ load: '/etc/passwd' }, /^run.image of esc load path "\/etc\/passwd" is absolute/],
    [{ build: { dockerfile: '../Dockerfile' } }, /^run.image of esc build.dockerfile "..\/Dockerfile" leaves the code tree$/],
    [{ load: 'image.tar' }, /^run.image.load of esc: image.tar leads outside the code tree$/],
    [{ build: { dockerfile: 'Dockerfile.up' } }, /^run.image.build.dockerfile of esc: Dockerfile.up leads outside the code tree$/]
  ]
  for (const [image, message] of cases) {
    const err = await t.throwsAsync(ensureImage(f.docker, image, o), { instanceOf: OriginError, message })
    t.is(err?.code, 'E_SPEC_INVALID')
  }
})

dockerTest('images: an image is built from a git repo at a ref, as the supervisor prepares its code, once per commit', async (t) => {
  const f = await engine(t)
  if (f === undefined) return
  const gs = await startGitServer()
  t.teardown(gs.stop)
  const dockerfile = `FROM ${f.base}\nCOPY app.txt /\nCMD ["cat", "/app.txt"]\n`
  const first = await gs.seed({ Dockerfile: dockerfile, 'app.txt': 'first commit\n' })
  const dataDir = await mkdtemp(join(f.dir, 'data-'))
  const cache = new CodeCache(dataDir, 'n1', silentLogger)
  const svc = { run: { image: { build: {} } }, code: { repo: gs.url, ref: 'main' }, placement: { replicas: 1 } } as unknown as ServiceSpec
  const noFiles = { files: new Map<string, Buffer>(), modes: new Map<string, number>() }
  const buildLogPath = join(dataDir, 'logs', 'build-app.log')

  const one = await cache.prepare('app', svc, { version: 'spec-1', ...noFiles })
  t.true(one.version.startsWith(first.slice(0, 12)), one.version)
  const a = await ensureImage(f.docker, { build: {} }, { service: 'app', codeDir: one.dir, codeVersion: one.version, buildLogPath, log: silentLogger })
  t.is(a, `origin/app:${first.slice(0, 12)}-${imageTag('x', { build: {} }).slice(2)}`)
  t.is(await runImage(f, a), 'first commit\n')

  const w = await gs.workdir()
  await w.write('app.txt', 'second commit\n')
  const second = await w.commit('second')
  await w.push()
  const two = await cache.prepare('app', svc, { version: 'spec-2', ...noFiles })
  t.true(two.version.startsWith(second.slice(0, 12)), two.version)
  const b = await ensureImage(f.docker, { build: {} }, { service: 'app', codeDir: two.dir, codeVersion: two.version, buildLogPath, log: silentLogger })
  t.not(b, a)
  t.is(await runImage(f, b), 'second commit\n')
  t.false(await present(f, a), 'the first commit\'s image is removed once nothing uses it')
  t.is((await readFile(buildLogPath, 'utf8')).match(/^--- .* building /gm)?.length, 2)
})
