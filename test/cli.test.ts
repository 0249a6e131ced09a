import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { cliPath } from '../node/launch'

interface Run { code: number, stdout: string, stderr: string }

/** Runs the compiled `origin` CLI to completion (killed after 60 s, so a hang fails rather than blocks). */
async function origin (...args: string[]): Promise<Run> {
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, [cliPath, ...args], { timeout: 60_000, env: { ...process.env, ORIGIN_LOG_LEVEL: 'warn' } }, (err, stdout, stderr) => {
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

test('cli: origin node without flags says what is missing and exits 2', async (t) => {
  const r = await origin('node')
  t.is(r.code, 2)
  t.regex(r.stderr, /^origin node: missing --cluster/)
  t.regex(r.stderr, /usage: origin node/)
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
