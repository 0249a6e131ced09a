import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import https from 'node:https'
import os from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { issueOperator, loadIdentity } from '../node/keys'
import { cliPath } from '../node/launch'
import { TestCluster } from './helpers/cluster'
import { startGitServer, type GitServer } from './helpers/git-server'
import { waitFor } from './helpers/wait'

const run = promisify(execFile)

const clusterJson = (extra: Record<string, unknown> = {}): string => JSON.stringify({ name: 'test', minNodes: 1, hubs: { count: 2 }, ...extra }, null, 2)
const service = JSON.stringify({ run: { command: 'node', args: ['-e', 'setInterval(() => {}, 1000)'] }, placement: { kind: 'every' } })

interface Setup { c: TestCluster, git: GitServer }

async function setup (t: { teardown (fn: () => Promise<void>): void }): Promise<Setup> {
  const c = await TestCluster.create()
  const git = await startGitServer()
  t.teardown(async () => { await c.cleanup(); await git.stop() })
  return { c, git }
}

/** Nodes a (strongest) and b are hubs, c and d are not. */
async function fourNodes ({ c, git }: Setup, specExtra: Record<string, unknown> = {}): Promise<void> {
  const image = { spec: { url: git.url, pollIntervalMs: 300, ...specExtra } }
  await c.start({ name: 'a', memoryMb: 4000, hubs: { count: 2 }, image })
  await c.start({ name: 'b', memoryMb: 3000, hubs: { count: 2 }, image })
  await c.waitForView({ a: 'alive', b: 'alive' })
  await c.start({ name: 'c', memoryMb: 1000, hubs: { count: 2 }, image })
  await c.start({ name: 'd', memoryMb: 1000, hubs: { count: 2 }, image })
  await c.waitForView({ a: 'alive', b: 'alive', c: 'alive', d: 'alive' })
}

async function specOf (c: TestCluster, node: string) {
  const client = await c.client(node)
  try { return await client.spec() } finally { client.close() }
}

/** Every node runs `commit`, as `observer` sees it. */
async function allRun (c: TestCluster, commit: string, names: string[], observer = names[0]): Promise<void> {
  await c.explainFailure(async () => await waitFor(async () => {
    const view = await specOf(c, observer)
    return names.every((n) => view.nodes.find((x) => x.id === n)?.spec === commit)
  }, { what: `${names.join(', ')} to run ${commit.slice(0, 12)}`, timeoutMs: 20_000 }))
}

test.serial('spec: a push reaches every node, and only hubs talk to the git server', async (t) => {
  const s = await setup(t)
  const first = await s.git.seed({ 'cluster.json': clusterJson(), 'services/idle.json': service })
  await fourNodes(s)
  await allRun(s.c, first, ['a', 'b', 'c', 'd'])
  const work = await s.git.workdir()
  await work.write('cluster.json', clusterJson({ minNodes: 2 }))
  const second = await work.commit('raise minNodes')
  await work.push()
  await allRun(s.c, second, ['a', 'b', 'c', 'd'], 'd')
  const view = await specOf(s.c, 'c')
  t.is(view.applied?.id, second)
  t.is(view.applied?.message, 'raise minNodes')
  t.true(s.git.requestsBy('origin-node/a') > 0, 'hub a fetched')
  t.true(s.git.requestsBy('origin-node/b') > 0, 'hub b fetched')
  t.is(s.git.requestsBy('origin-node/c'), 0, 'non-hub c made no request to the git server')
  t.is(s.git.requestsBy('origin-node/d'), 0, 'non-hub d made no request to the git server')
  t.regex(await s.c.node('d').log(), /received [0-9a-f]{12} from hub [ab]/)
})

test.serial('spec: bad pushes are rejected with the reason, the last good spec keeps running, a good push follows', async (t) => {
  const s = await setup(t)
  const good = await s.git.seed({ 'cluster.json': clusterJson(), 'services/idle.json': service })
  await fourNodes(s)
  await allRun(s.c, good, ['a', 'b', 'c', 'd'])
  const work = await s.git.workdir()
  const bad: Array<[string, Record<string, string | null>, RegExp]> = [
    ['invalid JSON', { 'cluster.json': '{ "name": "test",\n  "minNodes": }' }, /cluster\.json:2:\d+/],
    ['unknown field', { 'services/idle.json': JSON.stringify({ run: { command: 'node' }, placement: { kind: 'every' }, colour: 'red' }) }, /services\/idle\.json.*colour/],
    ['schema violation', { 'services/idle.json': JSON.stringify({ run: { command: 'node' }, placement: { kind: 'replicas' } }) }, /services\/idle\.json.*count/],
    ['TS that throws', { 'services/idle.json': null, 'services/boom.ts': 'throw new Error("kaboom")\n' }, /services\/boom\.ts.*kaboom/],
    ['TS past its time limit', { 'services/idle.json': null, 'services/spin.ts': 'while (true) {}\nexport default {}\n' }, /services\/spin\.ts.*time limit/],
    ['TS syntax error', { 'services/idle.json': null, 'services/typo.ts': 'export default { run: { command: "node" ,, }\n' }, /services\/typo\.ts:1:\d+/]
  ]
  for (const [what, files, message] of bad) {
    await work.run(['reset', '--hard', good])
    for (const [path, content] of Object.entries(files)) {
      if (content === null) await work.remove(path)
      else await work.write(path, content)
    }
    const commit = await work.commit(`bad: ${what}`)
    await work.run(['push', '--force', 'origin', 'HEAD:main'])
    const view = await waitFor(async () => { const v = await specOf(s.c, 'c'); return v.lastRejected?.version === commit ? v : undefined }, { what: `${what} to be rejected` })
    t.regex(view.lastRejected?.errors.join('\n') ?? '', message, what)
    t.is(view.applied?.id, good, `${what}: the last good spec is still applied`)
    t.true(view.nodes.every((n) => n.spec === good), `${what}: every node still runs the good spec`)
  }
  // A hub may miss a commit that was replaced before its next poll; between the two, one saw it.
  t.regex(await s.c.node('a').log() + await s.c.node('b').log(), /rejected spec [0-9a-f]{12} "bad: invalid JSON"/)
  await work.run(['reset', '--hard', good])
  await work.write('cluster.json', clusterJson({ minNodes: 3 }))
  const fixed = await work.commit('good again')
  await work.run(['push', '--force', 'origin', 'HEAD:main'])
  await allRun(s.c, fixed, ['a', 'b', 'c', 'd'])
})

function post (address: string, ca: string, body: string, headers: Record<string, string>): Promise<number> {
  const [host, port] = address.split(':')
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port: Number(port), path: '/hooks/git', method: 'POST', ca, checkServerIdentity: () => undefined, headers: { 'content-type': 'application/json', ...headers } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end(body)
  })
}

test.serial('spec: a webhook with a bad signature is refused; a good one syncs at once', async (t) => {
  const s = await setup(t)
  const secret = 'webhook-secret-123'
  const first = await s.git.seed({ 'cluster.json': clusterJson() })
  const image = { spec: { url: s.git.url, pollIntervalMs: 3_600_000, webhookSecret: secret } }
  await s.c.start({ name: 'a', memoryMb: 4000, hubs: { count: 2 }, image })
  await s.c.start({ name: 'b', memoryMb: 1000, hubs: { count: 2 }, image })
  await allRun(s.c, first, ['a', 'b'])
  const work = await s.git.workdir()
  await work.write('cluster.json', clusterJson({ minNodes: 2 }))
  const second = await work.commit('via webhook')
  await work.push()
  const ca = await readFile(join(s.c.keys, 'ca.crt'), 'utf8')
  const body = JSON.stringify({ ref: 'refs/heads/main', after: second })
  t.is(await post(s.c.node('a').address, ca, body, { 'x-hub-signature-256': 'sha256=' + '0'.repeat(64) }), 401)
  t.is(await post(s.c.node('a').address, ca, body, {}), 401)
  t.regex(await s.c.node('a').log(), /refused a webhook from .*: signature does not match/)
  t.is((await specOf(s.c, 'a')).applied?.id, first, 'a refused webhook starts nothing (polling is hourly here)')
  const signature = 'sha256=' + createHmac('sha256', secret).update(body).digest('hex')
  t.is(await post(s.c.node('a').address, ca, body, { 'x-hub-signature-256': signature }), 202)
  await allRun(s.c, second, ['a', 'b'])
})

test.serial('spec: cluster.sync() fetches at once', async (t) => {
  const s = await setup(t)
  const first = await s.git.seed({ 'cluster.json': clusterJson({ hubs: { count: 1 } }) })
  // The remote from the command line this time (`--spec URL#BRANCH` overrides image.json).
  const image = { spec: { url: 'http://127.0.0.1:9/not-this.git', pollIntervalMs: 3_600_000 } }
  const args = ['--spec', `${s.git.url}#main`]
  await s.c.start({ name: 'a', memoryMb: 4000, hubs: { count: 1 }, image, args })
  await s.c.start({ name: 'b', memoryMb: 1000, hubs: { count: 1 }, image, args })
  await allRun(s.c, first, ['a', 'b'])
  const work = await s.git.workdir()
  await work.write('cluster.json', clusterJson({ hubs: { count: 1 }, minNodes: 2 }))
  const second = await work.commit('synced by hand')
  await work.push()
  await s.c.explainFailure(async () => {
    const client = await s.c.client('b') // not a hub: it asks the hub
    const results = await client.sync()
    client.close()
    t.deepEqual(results.map((r) => [r.node, r.outcome, r.commit]), [['a', 'applied', second]])
  })
  await allRun(s.c, second, ['a', 'b'])
})

async function sshKey (dir: string): Promise<{ keyFile: string, publicKey: string }> {
  const keyFile = join(dir, 'id_ed25519')
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice', '-f', keyFile])
  return { keyFile, publicKey: (await readFile(keyFile + '.pub', 'utf8')).trim() }
}

test.serial('spec: with allowed signers, a signed commit is applied and an unsigned one refused', async (t) => {
  const s = await setup(t)
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-ssh-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const { keyFile, publicKey } = await sshKey(dir)
  const work = await s.git.workdir()
  await work.write('cluster.json', clusterJson())
  const signed = await work.commit('signed', { sign: { keyFile } })
  await work.push()
  const image = { spec: { url: s.git.url, pollIntervalMs: 300, allowedSigners: [publicKey] } }
  await s.c.start({ name: 'a', memoryMb: 4000, hubs: { count: 1 }, image })
  await s.c.start({ name: 'b', memoryMb: 1000, hubs: { count: 1 }, image })
  await allRun(s.c, signed, ['a', 'b'])
  await work.write('cluster.json', clusterJson({ minNodes: 2 }))
  const unsigned = await work.commit('not signed')
  await work.push()
  const view = await waitFor(async () => { const v = await specOf(s.c, 'b'); return v.lastRejected?.version === unsigned ? v : undefined }, { what: 'the unsigned commit to be rejected' })
  t.regex(view.lastRejected?.errors.join('\n') ?? '', /commit is not signed/)
  t.is(view.applied?.id, signed)
})

test.serial("spec: revoking an operator's certificate ends its REPL session", async (t) => {
  const s = await setup(t)
  const first = await s.git.seed({ 'cluster.json': clusterJson() })
  const image = { spec: { url: s.git.url, pollIntervalMs: 300 } }
  await s.c.start({ name: 'a', hubs: { count: 1 }, image })
  await allRun(s.c, first, ['a'])
  await issueOperator({ keys: s.c.keys, name: 'mallory' }).catch(() => {}) // keys are shared by this file's tests
  const mallory = await loadIdentity({ keys: s.c.keys, as: 'mallory' })
  const repl = spawn(process.execPath, [cliPath, 'repl', '--keys', s.c.keys, '--as', 'mallory', '--connect', s.c.node('a').address], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  repl.stdout.on('data', (d: Buffer) => { out += d.toString() })
  repl.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve) => repl.once('exit', (code) => resolve(code)))
  t.teardown(() => { repl.kill('SIGKILL') })
  repl.stdin.write('(await cluster.ping()).node\n')
  await waitFor(() => out.includes("'a'"), { what: 'the REPL to answer' })
  const work = await s.git.workdir()
  await work.write('cluster.json', clusterJson({ revokedSerials: [mallory.info.serial] }))
  await work.commit('revoke mallory')
  await work.push()
  await exited
  t.regex(out, /connection to .* closed; leaving the REPL/)
  await t.throwsAsync(run(process.execPath, [cliPath, 'repl', '--keys', s.c.keys, '--as', 'mallory', '--connect', s.c.node('a').address, '-e', '1']), { message: /revoked/ })
  t.regex(await s.c.node('a').log(), /dropping operator mallory .* revoked/)
})

test.serial('spec: a local spec directory is watched and edits are applied', async (t) => {
  const c = await TestCluster.create()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-specdir-'))
  t.teardown(async () => { await c.cleanup(); await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'services'))
  await writeFile(join(dir, 'cluster.json'), clusterJson())
  await c.start({ name: 'a', image: { specDir: dir } })
  const first = await waitFor(async () => (await specOf(c, 'a')).applied, { what: 'the directory spec to be applied' })
  t.regex(first.id, /^dir:[0-9a-f]{12}$/)
  await writeFile(join(dir, 'services', 'idle.json'), service)
  const second = await waitFor(async () => { const a = (await specOf(c, 'a')).applied; return a !== undefined && a.id !== first.id ? a : undefined }, { what: 'the edit to be applied' })
  t.not(second.id, first.id)
  await writeFile(join(dir, 'cluster.json'), '{ broken')
  await waitFor(async () => (await specOf(c, 'a')).lastRejected?.errors.some((e) => /cluster\.json:1:\d+/.test(e)), { what: 'the broken edit to be rejected' })
  t.is((await specOf(c, 'a')).applied?.id, second.id, 'the last good spec stays')
})

test.serial('spec: a remote that needs a token is fetched with the token from image.json; other nodes need none', async (t) => {
  const c = await TestCluster.create()
  const git = await startGitServer({ token: 'sekrit-token-1' })
  t.teardown(async () => { await c.cleanup(); await git.stop() })
  const first = await git.seed({ 'cluster.json': clusterJson({ hubs: { count: 1 } }) })
  await c.start({ name: 'a', memoryMb: 4000, hubs: { count: 1 }, image: { spec: { url: git.url, token: 'sekrit-token-1', pollIntervalMs: 300 } } })
  await allRun(c, first, ['a'])
  await c.start({ name: 'b', memoryMb: 1000, hubs: { count: 1 }, image: { spec: { url: git.url, pollIntervalMs: 300 } } })
  await c.waitForView({ a: 'alive', b: 'alive' })
  await allRun(c, first, ['a', 'b'])
  t.true(git.requestsBy((r) => r.userAgent === 'origin-node/a' && r.status === 200) > 0, 'the hub authenticated')
  t.is(git.requestsBy('origin-node/b'), 0, 'the other node took the commit from the hub')
})
