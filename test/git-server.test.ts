import test from 'ava'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import git from 'isomorphic-git'
import http from 'isomorphic-git/http/node'
import { startGitServer, type GitServer, type GitServerInit } from './helpers/git-server'

/** A server and an empty dir for an isomorphic-git clone, both removed after the test. */
async function setup (t: { teardown: (fn: () => Promise<void>) => void }, init?: GitServerInit): Promise<{ gs: GitServer, dir: string }> {
  const gs = await startGitServer(init)
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-iso-'))
  t.teardown(async () => {
    await gs.stop()
    await rm(dir, { recursive: true, force: true })
  })
  return { gs, dir }
}

test('git-server: a pushed commit can be cloned with isomorphic-git', async (t) => {
  const { gs, dir } = await setup(t)
  const oid = await gs.seed({ 'cluster.yaml': 'name: demo\n', 'services/web.yaml': 'image: nginx\n' })

  await git.clone({ fs, http, dir, url: gs.url, singleBranch: true, depth: 1 })
  t.is(await readFile(join(dir, 'services/web.yaml'), 'utf8'), 'image: nginx\n')

  const info = await git.getRemoteInfo({ http, url: gs.url })
  t.is(info.refs?.heads?.main, oid)
  const refs = await git.listServerRefs({ http, url: gs.url, prefix: 'refs/heads/' })
  t.deepEqual(refs.map((r) => [r.ref, r.oid]), [['refs/heads/main', oid]])
})

test('git-server: requests are counted per user agent', async (t) => {
  const { gs, dir } = await setup(t)
  await gs.seed({ 'cluster.yaml': 'name: demo\n' })
  t.true(gs.requestsBy('git/') > 0, 'the git CLI push went through the server')
  gs.resetCount()
  t.is(gs.requests.length, 0)

  await git.clone({ fs, http, dir, url: gs.url, singleBranch: true, depth: 1, headers: { 'user-agent': 'origin-node/n1' } })
  t.true(gs.requestsBy('origin-node/n1') > 0)
  t.is(gs.requestsBy((r) => r.userAgent.startsWith('origin-node/') && r.userAgent !== 'origin-node/n1'), 0)
  t.is(gs.requestsBy('git/'), 0)
  t.true(gs.requests.every((r) => r.status === 200 && r.remote !== ''))
})

test('git-server: fetch of a new commit after a push', async (t) => {
  const { gs, dir } = await setup(t)
  await gs.seed({ 'cluster.yaml': 'version: 1\n' })
  await git.clone({ fs, http, dir, url: gs.url, singleBranch: true, depth: 1 })

  const w = await gs.workdir()
  await w.write('cluster.yaml', 'version: 2\n')
  const second = await w.commit('second')
  await w.push()
  t.is(await w.head(), second)

  const fetched = await git.fetch({ fs, http, dir, ref: 'main', singleBranch: true, depth: 1 })
  t.is(fetched.fetchHead, second)
  await git.writeRef({ fs, dir, ref: 'refs/heads/main', value: second, force: true })
  await git.checkout({ fs, dir, ref: 'main', force: true })
  t.is(await readFile(join(dir, 'cluster.yaml'), 'utf8'), 'version: 2\n')
})

test('git-server: a token is required when set', async (t) => {
  const token = 's3cret-token'
  const { gs, dir } = await setup(t, { token })
  const oid = await gs.seed({ 'cluster.yaml': 'name: demo\n' })

  const err = await t.throwsAsync(git.clone({ fs, http, dir, url: gs.url, singleBranch: true, depth: 1 }))
  t.is((err as Error & { data?: { statusCode?: number } }).data?.statusCode, 401)

  const basic = await mkdtemp(join(os.tmpdir(), 'origin-iso-'))
  t.teardown(async () => { await rm(basic, { recursive: true, force: true }) })
  await git.clone({ fs, http, dir: basic, url: gs.url, singleBranch: true, depth: 1, onAuth: () => ({ username: 'x', password: token }) })
  t.is(await git.resolveRef({ fs, dir: basic, ref: 'HEAD' }), oid)

  await rm(dir, { recursive: true, force: true })
  await git.clone({ fs, http, dir, url: gs.url, singleBranch: true, depth: 1, headers: { authorization: `Bearer ${token}` } })
  t.is(await git.resolveRef({ fs, dir, ref: 'HEAD' }), oid)
  t.true(gs.requests.some((r) => r.status === 401))
})

test('git-server: a commit can be signed with an ssh key', async (t) => {
  const { gs, dir } = await setup(t)
  const keyFile = join(dir, 'signing-key')
  await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', keyFile])
  await gs.seed({ 'cluster.yaml': 'name: demo\n' })

  const w = await gs.workdir()
  await w.write('cluster.yaml', 'name: signed\n')
  const oid = await w.commit('signed', { sign: { keyFile } })
  await w.push()
  t.regex(await w.run(['cat-file', 'commit', oid]), /^gpgsig -----BEGIN SSH SIGNATURE-----/m)
})
