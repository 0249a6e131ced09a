import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { cliPath } from '../node/launch'
import { TestCluster } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const run = promisify(execFile)

async function setup (t: { teardown (fn: () => Promise<void>): void }): Promise<{ c: TestCluster, dir: string }> {
  const c = await TestCluster.create()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-repl-'))
  t.teardown(async () => { await c.cleanup(); await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'ops'))
  await writeFile(join(dir, 'cluster.json'), JSON.stringify({ name: 'test' }))
  return { c, dir }
}

test.serial('repl: the spec\'s ops/ helpers are in scope, and reloaded when the spec changes', async (t) => {
  const { c, dir } = await setup(t)
  await writeFile(join(dir, 'ops', 'math.ts'), 'export function double (n: number): number { return n * 2 }\n')
  await writeFile(join(dir, 'ops', 'members.ts'), "import { double } from './math'\nexport async function twiceAlive (cluster: { nodes (): Promise<Array<{ status: string }>> }): Promise<number> {\n  return double((await cluster.nodes()).filter((n) => n.status === 'alive').length)\n}\n")
  await c.start({ name: 'a', image: { specDir: dir } })
  const evalOn = async (expr: string): Promise<string> => (await run(process.execPath, [cliPath, 'repl', '--keys', c.keys, '--as', 'op', '--connect', c.node('a').address, '-e', expr])).stdout.trim()
  await waitFor(async () => (await evalOn('Object.keys(ops).sort()')).includes('twiceAlive'), { what: 'the helpers to be served' })
  t.is(await evalOn('await ops.twiceAlive(cluster)'), '2')
  // An interactive session picks up a helper pushed while it is open.
  const repl = spawn(process.execPath, [cliPath, 'repl', '--keys', c.keys, '--as', 'op', '--connect', c.node('a').address], { stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => { repl.kill('SIGKILL') })
  let out = ''
  repl.stdout.on('data', (d: Buffer) => { out += d.toString() })
  repl.stderr.on('data', (d: Buffer) => { out += d.toString() })
  repl.stdin.write('ops.double(5)\n')
  await waitFor(() => out.includes('10'), { what: 'the session to use a helper' })
  await writeFile(join(dir, 'ops', 'math.ts'), 'export function double (n: number): number { return n * 2 }\nexport function triple (n: number): number { return n * 3 }\n')
  await waitFor(async () => (await evalOn('typeof ops.triple')) === '"function"', { what: 'the new helper to be served' })
  repl.stdin.write('ops.triple(7)\n')
  await waitFor(() => out.includes('21'), { what: 'the open session to have the new helper' })
  repl.stdin.write('await cluster.nodes()\n')
  await waitFor(() => /id\s+address\s+status\s+role/.test(out), { what: 'the member table rendered as a table' })
  repl.stdin.end()
  t.is(await new Promise((resolve) => repl.once('exit', resolve)), 0, 'Ctrl-D leaves the REPL with 0')
})

test.serial('repl: open(path) hands a downloaded log to $EDITOR', async (t) => {
  const { c, dir } = await setup(t)
  await mkdir(join(dir, 'services'))
  await writeFile(join(dir, 'services', 'hello.json'), JSON.stringify({ run: { command: 'node', args: ['-e', "console.log('hello from the service'); setInterval(() => {}, 1000)"] }, placement: { kind: 'singleton' } }))
  await c.start({ name: 'a', image: { specDir: dir } })
  const logs = join(dir, 'downloads')
  const expr = `await open(await cluster.logs('a', 'hello', { dir: ${JSON.stringify(logs)} }))`
  const out = await waitFor(async () => {
    const r = await run(process.execPath, [cliPath, 'repl', '--keys', c.keys, '--as', 'op', '--connect', c.node('a').address, '-e', expr], { env: { ...process.env, EDITOR: 'cat', VISUAL: '' } })
    // ' out ': the line the service printed, not the 'started' line, whose command holds the same words.
    return r.stdout.includes(' out hello from the service') ? r.stdout : undefined
  }, { what: 'the log to be printed by the "editor"' })
  t.regex(out, /out hello from the service/)
  t.regex(out, /downloads\/a\/hello\.log"\n?$/, `the path is printed last, got ${JSON.stringify(out.slice(-200))}`)
  // lines and since narrow the download.
  const client = await c.client('a')
  const last = await readFile(await client.logs('a', 'hello', { lines: 1, dir: logs }), 'utf8')
  t.is(last.split('\n').filter((l) => l !== '' && !l.startsWith('# ')).length, 1, `one line of the log, got ${JSON.stringify(last)}`)
  const future = await readFile(await client.logs('a', 'hello', { since: new Date(Date.now() + 60_000), dir: logs }), 'utf8')
  t.is(future, '', 'nothing was written after a time to come')
  client.close()
})
