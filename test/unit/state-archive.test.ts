import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { OriginError } from '../../node/errors'
import { CHUNK_BYTES, checkPath, copyDir, pack, unpack, type ArchiveItem } from '../../node/state/archive'

async function tmp (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-archive-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function * items (list: unknown[]): AsyncGenerator<unknown> { for (const i of list) yield i }

async function collect (it: AsyncIterable<ArchiveItem>): Promise<ArchiveItem[]> {
  const out: ArchiveItem[] = []
  for await (const i of it) out.push(i)
  return out
}

const head = { k: 'head', v: 1, generation: 1, takenAt: 0, ageMs: 0, mode: 0o700 }
const meta = { generation: 3, takenAt: 1000, ageMs: 5 }

test('state archive: a directory round-trips with contents, modes, nested dirs, empty files and symlinks as they are', async (t) => {
  const root = await tmp(t)
  const src = join(root, 'src')
  await mkdir(join(src, 'a/b/c'), { recursive: true })
  const big = randomBytes(CHUNK_BYTES * 2 + 17)
  await writeFile(join(src, 'a/b/big.bin'), big)
  await writeFile(join(src, 'empty'), '')
  await writeFile(join(src, 'run.sh'), '#!/bin/sh\n')
  await chmod(join(src, 'run.sh'), 0o750)
  await writeFile(join(src, 'a/b/c/secret'), 'x')
  await chmod(join(src, 'a/b/c/secret'), 0o400)
  await chmod(join(src, 'a/b/c'), 0o500) // read-only directory: its contents must still be written
  await symlink('../big.bin', join(src, 'a/b/c/rel-link'))
  await symlink('/etc/passwd', join(src, 'abs-link'))
  await symlink('does/not/exist', join(src, 'dangling'))
  const into = join(root, 'out')
  const s = await copyDir(src, into, meta)
  t.like(s, { head: { generation: 3, takenAt: 1000, ageMs: 5 }, files: 4, dirs: 3, links: 3, bytes: big.length + 11 })
  t.true((await readFile(join(into, 'a/b/big.bin'))).equals(big))
  t.is((await readFile(join(into, 'empty'))).length, 0)
  t.is((await stat(join(into, 'run.sh'))).mode & 0o777, 0o750)
  t.is((await stat(join(into, 'a/b/c/secret'))).mode & 0o777, 0o400)
  t.is((await stat(join(into, 'a/b/c'))).mode & 0o777, 0o500)
  t.is(await readlink(join(into, 'a/b/c/rel-link')), '../big.bin')
  t.is(await readlink(join(into, 'abs-link')), '/etc/passwd', 'symlink targets are kept as they are, never followed')
  t.true((await lstat(join(into, 'abs-link'))).isSymbolicLink())
  t.is(await readlink(join(into, 'dangling')), 'does/not/exist')
  await chmod(join(src, 'a/b/c'), 0o700)
  await chmod(join(into, 'a/b/c'), 0o700)
})

test('state archive: file data travels in chunks of at most 256 KiB, so any size fits the frame bound', async (t) => {
  const src = await tmp(t)
  await writeFile(join(src, 'ten-mb'), randomBytes(10 * 1024 * 1024 + 3))
  const list = await collect(pack(src, meta))
  const chunks = list.filter((i): i is Extract<ArchiveItem, { k: 'data' }> => i.k === 'data')
  t.true(chunks.every((c) => c.d.length <= CHUNK_BYTES))
  t.is(chunks.reduce((n, c) => n + c.d.length, 0), 10 * 1024 * 1024 + 3)
  t.deepEqual(list.at(-1), { k: 'end', files: 1, dirs: 0, links: 0, bytes: 10 * 1024 * 1024 + 3 })
})

test('state archive: paths that are absolute, climb out or are not normalized are refused', (t) => {
  for (const p of ['../x', 'a/../../x', 'a/..', '/etc/passwd', 'a//b', './a', 'a/./b', '', 'a/', 'a\0b']) {
    const err = t.throws(() => checkPath(p), undefined, JSON.stringify(p))
    t.is((err as OriginError).code, 'E_PAYLOAD_INVALID')
  }
  t.is(checkPath('a/b..c/..d'), 'a/b..c/..d')
})

async function refused (t: ExecutionContext, list: unknown[], why: RegExp): Promise<string> {
  const root = await tmp(t)
  const into = join(root, 'out')
  const err = await t.throwsAsync(unpack(items(list), into))
  t.regex(err?.message ?? '', why)
  t.deepEqual(await readdir(root), [], 'nothing is left behind')
  return root
}

test('state archive: an entry with ../ is refused and nothing is written, inside or outside', async (t) => {
  const root = await refused(t, [head, { k: 'file', p: '../escaped', m: 0o644, t: 0 }, { k: 'data', d: Buffer.from('x') }, { k: 'end', files: 1, dirs: 0, links: 0, bytes: 1 }], /climbs out/)
  t.false((await readdir(root)).includes('escaped'))
})

test('state archive: nothing is written through a symlink the archive made', async (t) => {
  const outside = await tmp(t)
  await refused(t, [head, { k: 'link', p: 'l', to: outside }, { k: 'file', p: 'l/pwned', m: 0o644, t: 0 }, { k: 'end', files: 1, dirs: 0, links: 1, bytes: 0 }], /parent is not a directory/)
  t.deepEqual(await readdir(outside), [])
  await refused(t, [head, { k: 'link', p: 'l', to: outside }, { k: 'file', p: 'l', m: 0o644, t: 0 }, { k: 'end', files: 1, dirs: 0, links: 1, bytes: 0 }], /appears twice/)
})

test('state archive: an incomplete or inconsistent stream is refused and leaves nothing', async (t) => {
  await refused(t, [head, { k: 'file', p: 'f', m: 0o644, t: 0 }, { k: 'data', d: Buffer.from('abc') }], /ended before the end item/)
  await refused(t, [head, { k: 'file', p: 'f', m: 0o644, t: 0 }, { k: 'data', d: Buffer.from('abc') }, { k: 'end', files: 1, dirs: 0, links: 0, bytes: 4 }], /the end says/)
  await refused(t, [{ k: 'file', p: 'f', m: 0o644, t: 0 }], /first item is not a head/)
  await refused(t, [head, { k: 'data', d: Buffer.from('x') }], /data with no file open/)
  await refused(t, [head, { k: 'file', p: 'f', m: 0o644, t: 0 }, { k: 'data', d: Buffer.alloc(CHUNK_BYTES + 1) }], /over 262144/)
  await refused(t, [head, { k: 'file', p: 'f', m: 0o644, t: 0 }, { k: 'data', d: 'text' }], /not binary/)
  await refused(t, [head, { k: 'dev', p: 'f' }], /unknown item kind/)
  await refused(t, [head, { k: 'end', files: 0, dirs: 0, links: 0, bytes: 0 }, { k: 'dir', p: 'late', m: 0o755, t: 0 }], /after the end/)
})

test('state archive: a stream that fails midway leaves nothing', async (t) => {
  const root = await tmp(t)
  async function * broken (): AsyncGenerator<unknown> {
    yield head
    yield { k: 'file', p: 'f', m: 0o644, t: 0 }
    yield { k: 'data', d: Buffer.from('partial') }
    throw new OriginError('E_CLOSED', 'connection closed')
  }
  await t.throwsAsync(unpack(broken(), join(root, 'out')), { message: 'connection closed' })
  t.deepEqual(await readdir(root), [])
})

test('state archive: setuid bits from a peer are dropped', async (t) => {
  const root = await tmp(t)
  const into = join(root, 'out')
  await unpack(items([head, { k: 'file', p: 'f', m: 0o4755, t: 0 }, { k: 'end', files: 1, dirs: 0, links: 0, bytes: 0 }]), into)
  t.is((await stat(join(into, 'f'))).mode & 0o7777, 0o755)
})
