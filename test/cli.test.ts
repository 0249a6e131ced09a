import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { cliPath } from '../node/launch'
import { TestCluster } from './helpers/cluster'
import { waitFor } from './helpers/wait'

interface Run { code: number, stdout: string, stderr: string }

/** Runs the compiled `origin` CLI to completion (killed after 60 s, so a hang fails rather than blocks). */
async function origin (...args: string[]): Promise<Run> {
  return await originWith({}, ...args)
}

/** `origin` with more environment; ORIGIN_KEYS, ORIGIN_AS and ORIGIN_CONNECT are cleared unless given. */
async function originWith (env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, [cliPath, ...args], { timeout: 60_000, env: { ...process.env, ORIGIN_LOG_LEVEL: 'warn', ORIGIN_KEYS: '', ORIGIN_AS: '', ORIGIN_CONNECT: '', ...env } }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') { reject(err); return }
      resolve({ code: err === null ? 0 : err.code as number, stdout, stderr })
    })
  })
}

/** A fresh temp dir, removed when the test ends. */
async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-cli-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

test('cli: origin alone prints the usage and exits 2', async (t) => {
  const r = await origin()
  t.is(r.code, 2)
  t.regex(r.stdout, /^usage: origin <command>/)
  for (const command of ['keys', 'node', 'repl', 'demo']) t.regex(r.stdout, new RegExp(`^  ${command} `, 'm'))
})

test('cli: origin --help prints the usage and exits 0', async (t) => {
  const r = await origin('--help')
  t.is(r.code, 0)
  t.regex(r.stdout, /^usage: origin <command>/)
})

test('cli: an unknown command is named and exits 2', async (t) => {
  const r = await origin('nope')
  t.is(r.code, 2)
  t.regex(r.stderr, /unknown command "nope"/)
  t.regex(r.stderr, /usage: origin <command>/)
})

test('cli: origin node --help documents --image and exits 0', async (t) => {
  const r = await origin('node', '--help')
  t.is(r.code, 0)
  t.regex(r.stdout, /^usage: origin node --image DIR/)
  t.regex(r.stdout, /^ {2}--image DIR /m)
})

test('cli: origin node without flags says what is missing, points to --help and exits 2', async (t) => {
  const r = await origin('node')
  t.is(r.code, 2)
  t.regex(r.stderr, /^origin node: missing --cluster/)
  t.regex(r.stderr, /^'origin node --help' for usage$/m)
  t.true(r.stderr.trim().split('\n').length <= 2, `one short message, got ${r.stderr}`)
})

test('cli: origin node with a bad --listen names the flag and exits 2', async (t) => {
  const dir = await tempDir(t)
  const r = await origin('node', '--keys', join(dir, 'keys'), '--cluster', 'c', '--listen', 'nope', '--data', join(dir, 'data'))
  t.is(r.code, 2)
  t.regex(r.stderr, /^origin node: --listen must be HOST:PORT, got "nope"/)
  t.deepEqual(await readdir(dir), [], 'nothing was written')
})

test('cli: origin keys init without --cluster exits 2', async (t) => {
  const dir = await tempDir(t)
  const r = await origin('keys', 'init', '--out', join(dir, 'keys'))
  t.is(r.code, 2)
  t.regex(r.stderr, /^origin keys: missing --cluster/)
  t.deepEqual(await readdir(dir), [], 'no keys were written')
})

test('cli: origin node --image with an unknown field in image.json names the field and the file, and exits 1', async (t) => {
  const dir = await tempDir(t)
  const image = join(dir, 'img')
  await mkdir(join(image, 'keys'), { recursive: true })
  await writeFile(join(image, 'image.json'), JSON.stringify({ cluster: 'c', listen: '127.0.0.1:0', colour: 'red' }))
  const r = await origin('node', '--image', image)
  t.is(r.code, 1)
  t.true(r.stderr.includes(join(image, 'image.json')), r.stderr)
  t.regex(r.stderr, /unknown field "colour"/)
})

test('cli: origin repl without --connect exits 2', async (t) => {
  const dir = await tempDir(t)
  const r = await origin('repl', '--keys', join(dir, 'keys'), '--as', 'op')
  t.is(r.code, 2)
  t.regex(r.stderr, /^origin repl: missing --connect/)
})

test('cli: a usage error names every missing flag at once, in one short message', async (t) => {
  const r = await origin('repl')
  t.is(r.code, 2)
  t.is(r.stderr, "origin repl: missing --keys, --as and --connect (give the flags, --context NAME, or ORIGIN_KEYS, ORIGIN_AS, ORIGIN_CONNECT)\n'origin repl --help' for usage\n")
  const some = await origin('repl', '--as', 'op')
  t.regex(some.stderr, /^origin repl: missing --keys and --connect /)
  const save = await origin('context', 'save')
  t.regex(save.stderr, /^origin context: missing NAME, --keys, --as and --connect\n/)
})

test('cli: origin --version prints the version of the package', async (t) => {
  const r = await origin('--version')
  t.is(r.code, 0)
  const pkg = JSON.parse(await readFile(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  t.is(r.stdout, `origin ${pkg.version}\n`)
})

test('cli: origin completion prints bash and zsh scripts that ask origin __complete', async (t) => {
  const bash = await origin('completion', 'bash')
  t.is(bash.code, 0)
  t.regex(bash.stdout, /^complete .*-F _origin_complete origin$/m)
  t.regex(bash.stdout, /origin __complete /)
  const zsh = await origin('completion', 'zsh')
  t.regex(zsh.stdout, /^#compdef origin$/m)
  t.regex(zsh.stdout, /^compdef _origin_complete origin$/m)
  const fish = await origin('completion', 'fish')
  t.is(fish.code, 2)
  t.regex(fish.stderr, /unknown shell "fish" \(bash or zsh\)/)
})

test('cli: completion candidates are the commands, subcommands, flags and saved contexts', async (t) => {
  const dir = await tempDir(t)
  const env = { XDG_CONFIG_HOME: dir, ORIGIN_KEYS: join(dir, 'keys') }
  const complete = async (...words: string[]): Promise<string[]> => (await originWith(env, '__complete', ...words)).stdout.split('\n').filter(Boolean)
  t.deepEqual(await complete(''), ['keys', 'node', 'repl', ...(await complete('b')).includes('build') ? ['build'] : [], 'demo', 'spec', 'context', 'completion', '--help', '--version'])
  t.deepEqual(await complete('re'), ['repl'])
  t.deepEqual(await complete('keys', ''), ['init', 'operator'])
  t.deepEqual(await complete('spec', ''), ['check'])
  t.deepEqual(await complete('completion', ''), ['bash', 'zsh'])
  t.deepEqual(await complete('repl', '--c'), ['--connect', '--context'])
  t.deepEqual(await complete('repl', '--keys', ''), [], 'a path: the shell completes file names')
  t.is((await originWith(env, 'context', 'save', 'prod', '--keys', join(dir, 'keys'), '--as', 'alice', '--connect', '10.0.0.4:7400')).code, 0)
  t.deepEqual(await complete('repl', '--context', ''), ['prod'])
  t.deepEqual(await complete('repl', '--connect', '10'), ['10.0.0.4:7400'])
  await mkdir(join(dir, 'keys', 'operators'), { recursive: true })
  await writeFile(join(dir, 'keys', 'operators', 'alice.crt'), '')
  t.deepEqual(await complete('repl', '--as', ''), ['alice'], 'operators in the keys dir')
})

/** A spec dir with `files` (JSON values or text). */
async function specDir (t: ExecutionContext, files: Record<string, unknown>): Promise<string> {
  const dir = await tempDir(t)
  for (const [path, value] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), typeof value === 'string' ? value : JSON.stringify(value, null, 2))
  }
  return dir
}

test('cli: origin spec check passes a valid spec with 0', async (t) => {
  const dir = await specDir(t, {
    'cluster.json': { name: 'prod' },
    'services/web.json': { run: { command: 'node', args: ['server.js'] }, placement: { kind: 'replicas', count: 2 } },
    'services/agent.ts': "export default { run: { command: 'node', args: ['agent.js'] }, placement: { kind: 'every' as const } }\n"
  })
  const r = await origin('spec', 'check', dir)
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, `ok: ${dir} is a valid spec for cluster "prod": 2 services (agent, web)\n`)
  const json = await origin('spec', 'check', dir, '--json')
  t.deepEqual(JSON.parse(json.stdout), { ok: true, errors: [], cluster: 'prod', services: ['agent', 'web'] })
  const other = await origin('spec', 'check', dir, '--cluster', 'staging')
  t.is(other.code, 1)
  t.regex(other.stderr, /cluster\.json: name "prod" is not this cluster \("staging"\)/)
})

test('cli: origin spec check prints each error as nodes do, with file and line, and exits 1', async (t) => {
  const dir = await specDir(t, {
    'cluster.ts': 'export default {\n  name: "prod",\n  minNodes: "two"\n}\n',
    'services/web.json': '{\n  "run": { "command": "node" },\n  "placement": { "kind": "everywhere" }\n}\n',
    'services/api.ts': 'const port: number = 8080\nthrow new Error("boom")\nexport default {}\n',
    'services/broken.json': '{ "run": { "command": "node" }, }\n'
  })
  const r = await origin('spec', 'check', dir)
  t.is(r.code, 1)
  const lines = r.stderr.trim().split('\n')
  t.deepEqual(lines, [
    `${dir}/cluster.ts:3:13:/minNodes: must be integer`,
    `${dir}/services/api.ts:2:7: threw Error: boom`,
    `${dir}/services/broken.json:1:31: invalid JSON: a trailing comma is not allowed in JSON`,
    `${dir}/services/web.json:3:26:/placement/kind: must be equal to one of the allowed values (every, hubs, singleton, replicas)`,
    '4 errors: a node would reject this spec'
  ])
  const missing = await origin('spec', 'check', join(dir, 'nope'))
  t.is(missing.code, 1)
  t.regex(missing.stderr, /cannot read spec directory .*nope/)
  const usage = await origin('spec', 'check')
  t.is(usage.code, 2)
  t.regex(usage.stderr, /^origin spec: missing DIR/)
})

test('cli: origin keys init refuses to overwrite an existing keys dir and exits 1', async (t) => {
  const keys = join(await tempDir(t), 'keys')
  const first = await origin('keys', 'init', '--out', keys, '--cluster', 'c')
  t.is(first.code, 0, first.stderr)
  t.regex(first.stdout, /^wrote .*ca\.crt$/m)
  const second = await origin('keys', 'init', '--out', keys, '--cluster', 'c')
  t.is(second.code, 1)
  t.regex(second.stderr, /refusing to overwrite .*ca\.crt/)
  t.deepEqual((await readdir(keys)).sort(), ['ca.crt', 'ca.key', 'node.crt', 'node.key'])
})

test.serial('cli: origin spec check finds what a node rejects the spec for, nothing more, nothing less', async (t) => {
  const dir = await specDir(t, {
    'cluster.json': '{\n  "name": "test",\n  "minNodes": 0\n}\n',
    'services/web.json': '{\n  "run": { "command": "node", "args": [1] },\n  "placement": { "kind": "replicas" },\n  "colour": "red"\n}\n',
    'services/job.ts': "export default { run: { command: 'node' }, placement: { kind: 'singleton' }, restart: { policy: 'sometimes' } }\n"
  })
  const c = await TestCluster.create()
  t.teardown(async () => { await c.cleanup() })
  await c.start({ name: 'a', image: { specDir: dir }, logLevel: 'info' })
  const client = await c.client('a')
  const rejected = await waitFor(async () => (await client.spec()).lastRejected, { what: 'the node to reject the spec' })
  const r = await origin('spec', 'check', dir)
  t.is(r.code, 1)
  // The same errors; spec check adds the line and column where a node names a JSON path.
  const checked = r.stderr.trim().split('\n').slice(0, -1).map((l) => l.slice(dir.length + 1).replace(/^([^:]+):\d+:\d+:\//, '$1:/'))
  t.deepEqual(checked.sort(), [...rejected.errors].sort())
  t.true(checked.length >= 3, r.stderr)
})
