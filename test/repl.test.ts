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

/** An interactive session over pipes (no terminal), with its own config dir; `out` collects what it prints. */
function session (t: { teardown (fn: () => void): void }, args: string[], env: NodeJS.ProcessEnv = {}): { write (line: string): void, out: () => string, exited: Promise<number | null> } {
  const repl = spawn(process.execPath, [cliPath, 'repl', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  t.teardown(() => { repl.kill('SIGKILL') })
  let out = ''
  repl.stdout.on('data', (d: Buffer) => { out += d.toString() })
  repl.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve) => repl.once('exit', (code) => resolve(code)))
  return { write: (line) => repl.stdin.write(line + '\n'), out: () => out, exited }
}

test.serial('repl: .help and typing cluster list the methods; errors are one line with a code, .debug shows the stack; history is written', async (t) => {
  const { c, dir } = await setup(t)
  await c.start({ name: 'a', image: { specDir: dir } })
  await c.waitForView({ a: 'alive' })
  const config = join(dir, 'config')
  const s = session(t, ['--keys', c.keys, '--as', 'op', '--connect', c.node('a').address], { XDG_CONFIG_HOME: config })
  s.write('cluster')
  await waitFor(() => s.out().includes('cluster.help('), { what: 'typing cluster to list the methods' })
  t.regex(s.out(), /^(a> )?cluster: connected to a at .* as op$/m)
  t.regex(s.out(), /^ {2}cluster\.stats\(\)\s+CPU, memory/m)
  t.notRegex(s.out(), /#link|Link \{|WebSocket/, 'no insides')
  s.write('.help')
  await waitFor(() => /^ {2}\.debug\s+show the stack/m.test(s.out()), { what: '.help' })
  t.regex(s.out(), /^ {2}open\(path\)\s+open a file/m)
  t.regex(s.out(), /^ops: /m)
  s.write("cluster.help('stats')")
  await waitFor(() => s.out().includes('cluster.stats(opts?: { watch?: number })'), { what: "cluster.help('stats')" })
  s.write("await cluster.where('nope')")
  await waitFor(() => s.out().includes('E_NOT_FOUND: no service "nope"'), { what: 'the error line' })
  const line = s.out().split('\n').find((l) => l.includes('E_NOT_FOUND'))!
  t.regex(line, /^(a> )?E_NOT_FOUND: no service "nope" in the applied spec — check the name: cluster\.nodes\(\)/)
  t.notRegex(s.out(), /at RpcConnection|caller: undefined|Uncaught/, 'no stack, no internals')
  s.write('.debug')
  await waitFor(() => s.out().includes('at RpcConnection.onMessage'), { what: '.debug to show the stack of the last error' })
  s.write('.exit')
  t.is(await s.exited, 0)
  const history = await readFile(join(config, 'origin', 'repl_history'), 'utf8')
  t.is(history, "cluster\n.help\ncluster.help('stats')\nawait cluster.where('nope')\n.debug\n.exit\n")
})

test.serial('repl: ORIGIN_KEYS, ORIGIN_AS, ORIGIN_CONNECT and saved contexts stand for the flags; flags win', async (t) => {
  const { c, dir } = await setup(t)
  await c.start({ name: 'a', image: { specDir: dir } })
  await c.start({ name: 'b', image: { specDir: dir } })
  await c.waitForView({ a: 'alive', b: 'alive' })
  const env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config') }
  const origin = async (args: string[], more: NodeJS.ProcessEnv = {}): Promise<string> => (await run(process.execPath, [cliPath, ...args], { env: { ...env, ...more } })).stdout.trim()
  const ping = ['repl', '-e', '(await cluster.ping()).node']
  t.is(await origin(ping, { ORIGIN_KEYS: c.keys, ORIGIN_AS: 'op', ORIGIN_CONNECT: c.node('a').address }), '"a"')
  t.is(await origin([...ping, '--connect', c.node('b').address], { ORIGIN_KEYS: c.keys, ORIGIN_AS: 'op', ORIGIN_CONNECT: c.node('a').address }), '"b"', 'a flag wins over the environment')
  t.regex(await origin(['context', 'save', 'test-a', '--keys', c.keys, '--as', 'op', '--connect', c.node('a').address]), /^saved context test-a: /)
  t.is(await origin([...ping, '--context', 'test-a']), '"a"')
  t.is(await origin([...ping, '--context', 'test-a', '--connect', c.node('b').address]), '"b"', 'a flag wins over the context')
  t.is(await origin([...ping, '--context', 'test-a'], { ORIGIN_CONNECT: c.node('b').address }), '"a"', 'the context named wins over the environment')
  t.regex(await origin(['context', 'list']), new RegExp(`^test-a {2}--keys ${c.keys} --as op --connect ${c.node('a').address.replace(/\./g, '\\.')}$`, 'm'))
  const unknown = await t.throwsAsync(run(process.execPath, [cliPath, ...ping, '--context', 'nope'], { env })) as unknown as { code: number, stderr: string }
  t.is(unknown.code, 2)
  t.regex(unknown.stderr, /no context "nope" \(saved: test-a\)/)
})
