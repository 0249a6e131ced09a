import test from 'ava'
import { spawn } from 'node:child_process'
import { cliPath } from '../node/launch'
import { TestCluster } from './helpers/cluster'
import { waitFor } from './helpers/wait'

test.serial('repl: when its node leaves, and when the next one dies, the session goes on with another member and keeps its variables', async (t) => {
  const c = await TestCluster.create()
  t.teardown(async () => { await c.cleanup() })
  for (const name of ['a', 'b', 'c']) await c.start({ name, logLevel: 'info' })
  await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  const repl = spawn(process.execPath, [cliPath, 'repl', '--keys', c.keys, '--as', 'op', '--connect', c.node('a').address], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, XDG_CONFIG_HOME: c.dir } })
  t.teardown(() => { repl.kill('SIGKILL') })
  let out = ''
  repl.stdout.on('data', (d: Buffer) => { out += d.toString() })
  repl.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const say = (line: string): void => { repl.stdin.write(line + '\n') }
  say('x = 41')
  await waitFor(() => out.includes('41'), { what: 'the session to answer' })

  await c.node('a').proc.stop() // a graceful leave
  await waitFor(() => /reconnected to [bc] at /.test(out), { what: 'the session to go on with another member' })
  t.regex(out, /connection to a \(.*\) lost: node stopping; going on with another member/)
  const first = /reconnected to ([bc]) at /.exec(out)![1]!
  say('x + 1')
  await waitFor(() => out.includes('42'), { what: 'the variable to be there still' })
  say('(await cluster.ping()).node')
  await waitFor(() => out.includes(`'${first}'`), { what: `the calls to go to ${first}` })

  c.node(first).proc.signal('SIGKILL') // a death: no goodbye
  const second = first === 'b' ? 'c' : 'b'
  await waitFor(() => out.includes(`reconnected to ${second} at `), { what: `the session to go on with ${second}`, timeoutMs: 30_000 })
  t.regex(out, new RegExp(`connection to ${first} \\(.*\\) lost: dropped without a goodbye`))
  say('x + 2')
  await waitFor(() => out.includes('43'), { what: 'the variable after the second move' })
  say('(await cluster.nodes()).length')
  await waitFor(() => /^(\w> )*3$/m.test(out), { what: 'calls to work on the last member' })
  repl.stdin.end()
  t.is(await new Promise((resolve) => repl.once('exit', resolve)), 0)
})
