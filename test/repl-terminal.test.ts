/**
 * The REPL in a real terminal (tmux): an editor gets the terminal and gives it back, a
 * stats watch redraws in place until Ctrl-C, Tab completes, history comes back in the
 * next session. Skipped where tmux or vi is missing.
 */
import test from 'ava'
import { execFile, execFileSync } from 'node:child_process'
import { mkdir, readFile, rm, mkdtemp, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { cliPath } from '../node/launch'
import { TestCluster } from './helpers/cluster'
import { waitFor } from './helpers/wait'

const run = promisify(execFile)
const has = (cmd: string): boolean => { try { execFileSync('sh', ['-c', `command -v ${cmd}`]); return true } catch { return false } }
const serial = has('tmux') && has('vi') ? test.serial : test.serial.skip

/** One tmux server of our own (its own socket), one session running `command`. */
class Terminal {
  private constructor (private readonly socket: string) {}

  static async open (command: string): Promise<Terminal> {
    const term = new Terminal(`origin-test-${process.pid}-${Math.random().toString(36).slice(2)}`)
    await term.tmux('new-session', '-d', '-s', 's', '-x', '150', '-y', '45', command)
    return term
  }

  async tmux (...args: string[]): Promise<string> {
    return (await run('tmux', ['-L', this.socket, ...args])).stdout
  }

  async keys (...keys: string[]): Promise<void> { await this.tmux('send-keys', '-t', 's', ...keys) }
  async type (text: string): Promise<void> { await this.tmux('send-keys', '-t', 's', '-l', text) }
  async line (text: string): Promise<void> { await this.type(text); await this.keys('Enter') }
  async screen (): Promise<string> { return await this.tmux('capture-pane', '-p', '-t', 's') }

  async waitScreen (test: (screen: string) => boolean, what: string): Promise<string> {
    let last = ''
    try {
      return await waitFor(async () => { last = await this.screen(); return test(last) ? last : undefined }, { what, timeoutMs: 20_000 })
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${last}`)
    }
  }

  async close (): Promise<void> { await this.tmux('kill-server').catch(() => {}) }
}

async function setup (t: { teardown (fn: () => Promise<void>): void }): Promise<{ c: TestCluster, dir: string, repl: string }> {
  const c = await TestCluster.create()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-term-'))
  t.teardown(async () => { await c.cleanup(); await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'spec', 'services'), { recursive: true })
  await writeFile(join(dir, 'spec', 'cluster.json'), JSON.stringify({ name: 'test', minNodes: 1 }))
  await writeFile(join(dir, 'spec', 'services', 'hello.json'), JSON.stringify({ run: { command: 'node', args: ['-e', "console.log('hello from the service'); require('http').createServer((q, s) => s.end()).listen(process.env.PORT)"] }, placement: { kind: 'singleton' } }))
  await c.start({ name: 'a', image: { specDir: join(dir, 'spec') }, logLevel: 'info' })
  await c.waitForView({ a: 'alive' })
  const client = await c.client('a')
  await waitFor(async () => (await client.services()).services.some((s) => s.instances.some((i) => i.state === 'ready')), { what: 'hello to run' })
  client.close()
  const env = `XDG_CONFIG_HOME=${dir}/config EDITOR=vi VISUAL= TERM=xterm-256color`
  const repl = `cd ${dir} && env ${env} ${process.execPath} ${cliPath} repl --keys ${c.keys} --as op --connect ${c.node('a').address}; echo "REPL EXITED $?"; sleep 600`
  return { c, dir, repl }
}

// capture-pane drops trailing spaces: the prompt is `a>` at the end of a line.
const prompt = (screen: string): boolean => /^a>$/m.test(screen)

serial('repl in a terminal: open(path) gives the terminal to vi and takes it back when vi exits', async (t) => {
  const { dir, repl } = await setup(t)
  const term = await Terminal.open(repl)
  t.teardown(async () => { await term.close() })
  await term.waitScreen(prompt, 'the prompt')
  await term.line("p = await cluster.logs('a', 'hello')")
  await term.waitScreen((s) => s.includes("logs/a/hello.log'"), 'the download')
  await term.line('await open(p)')
  await term.waitScreen((s) => s.includes('out hello from the service') && !prompt(s) && /"logs\/a\/hello\.log"|hello\.log/.test(s.split('\n').filter(Boolean).pop() ?? ''), 'vi to show the log')
  // Every keystroke goes to vi: none is lost to the REPL.
  await term.keys('G')
  await term.keys('o')
  await term.type('written in vi')
  await term.keys('Escape')
  await term.type(':wq')
  await term.keys('Enter')
  const back = await term.waitScreen((s) => /await open\(p\)\n'.*logs\/a\/hello\.log'\na>$/m.test(s), 'the REPL to print the path and prompt again')
  t.notRegex(back, /ReferenceError|is not defined|Uncaught/)
  t.regex(await readFile(join(dir, 'logs', 'a', 'hello.log'), 'utf8'), /\nwritten in vi\n$/)
  await term.line('6 * 7')
  await term.waitScreen((s) => /^42$/m.test(s), 'the REPL to have the keyboard again')
  await term.line('.exit')
  await term.waitScreen((s) => s.includes('REPL EXITED 0'), 'the REPL to leave with 0')
})

serial('repl in a terminal: a stats watch redraws in place until Ctrl-C; Tab completes; history comes back next session', async (t) => {
  const { dir, repl } = await setup(t)
  const term = await Terminal.open(repl)
  t.teardown(async () => { await term.close() })
  await term.waitScreen(prompt, 'the prompt')
  await term.line('await cluster.stats({ watch: 500 })')
  const header = /^(\d+:\d+:\d+.*?) {2}every 0\.5 s, Ctrl-C to stop$/m
  const first = await term.waitScreen((s) => header.test(s) && /^hello-\d\s+a\s+ready/m.test(s), 'the first frame')
  const time = header.exec(first)![1]
  const later = await term.waitScreen((s) => header.exec(s)?.[1] !== time, 'a refresh')
  t.is(later.match(/Ctrl-C to stop/g)?.length, 1, 'redrawn in place: one frame on the screen')
  await term.keys('C-c')
  await term.waitScreen(prompt, 'the prompt after Ctrl-C')
  await term.line("'after the watch'")
  await term.waitScreen((s) => s.includes("'after the watch'\na>\n"), 'the REPL to take input again')
  // Ctrl-C also stops waiting for something that never ends.
  await term.line('await new Promise(() => {})')
  await new Promise((resolve) => setTimeout(resolve, 300))
  await term.keys('C-c')
  await term.waitScreen((s) => /\(stopped waiting; what was asked may still happen on the node\)\na>$/m.test(s), 'the prompt back after Ctrl-C')

  await term.keys('C-l')
  await term.type('cluster.wh')
  await term.keys('Tab')
  await term.waitScreen((s) => /^a> cluster\.where$/m.test(s), 'the method completed')
  await term.type("('")
  await term.keys('Tab')
  await term.waitScreen((s) => /^a> cluster\.where\('hello$/m.test(s), 'the service name completed')
  await term.keys('C-u')
  await term.type('cluster.')
  await term.keys('Tab')
  await term.keys('Tab')
  const listed = await term.waitScreen((s) => /\bunfollow\b/.test(s), 'the methods listed')
  t.notRegex(listed, /__proto__|constructor|#link|attach/)
  await term.keys('C-u')
  await term.line('.exit')
  await term.waitScreen((s) => s.includes('REPL EXITED 0'), 'the REPL to leave')
  t.regex(await readFile(join(dir, 'config', 'origin', 'repl_history'), 'utf8'), /'after the watch'\nawait new Promise\(\(\) => \{\}\)\n\.exit\n$/)

  const next = await Terminal.open(repl)
  t.teardown(async () => { await next.close() })
  await next.waitScreen(prompt, 'the prompt of the next session')
  await next.keys('Up')
  await next.keys('Up')
  await next.keys('Up')
  await next.waitScreen((s) => /^a> 'after the watch'$/m.test(s), 'the last session\'s line from history')
})
