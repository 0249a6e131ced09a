/**
 * The journal across 3 real nodes: a push and a killed instance show up in every node's
 * journal, merged in time order with their reasons; the journal survives a node restart;
 * `cluster.state()` names every member and service; `cluster.state({ at })`, replayed from
 * the journals, says what `cluster.services()` and `cluster.nodes()` said at that moment.
 */
import test from 'ava'
import { execFile, execFileSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { cliPath } from '../node/launch'
import type { JournalEvent } from '../node/journal'
import type { StateAt } from '../repl/journal'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

/** Answers `hi`; `/die` kills it with SIGKILL (a crash the node did not ask for). */
const web = (greeting: string): unknown => ({
  run: { command: 'node', args: ['-e', `require('http').createServer((q, s) => { if (q.url === '/die') { s.end('bye'); setTimeout(() => process.kill(process.pid, 'SIGKILL'), 20) } else s.end('${greeting}') }).listen(process.env.PORT)`] },
  placement: { kind: 'every' },
  restart: { policy: 'always', backoffMs: 200 }
})

const instanceEvents = (es: JournalEvent[]): Array<Extract<JournalEvent, { kind: 'instance' }>> => es.filter((e): e is Extract<JournalEvent, { kind: 'instance' }> => e.kind === 'instance')

test.serial('journal: a push and a kill are in the merged events, ordered, with reasons; state({ at }) replays what services() and nodes() said', async (t) => {
  const s = await specDirCluster(t)
  await s.write('services/web.json', web('hi'))
  for (const name of ['a', 'b', 'c']) await s.c.start({ name, image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  const client = await s.c.client('a')
  const before = await s.c.explainFailure(async () => await s.waitInstances('a', 'web', 3))
  // A moment when everything is settled: what the REPL says now is what the replay must say later.
  const services1 = await client.services()
  const nodes1 = await client.nodes()
  const at1 = Date.now()
  await waitFor(async () => Date.now() > at1 + 5 ? true : undefined)

  // The push: a new version of web, replaced one instance at a time.
  await s.write('services/web.json', web('hello'))
  await s.c.explainFailure(async () => await waitFor(async () => {
    const ready = await s.instances('a', 'web', 'ready')
    return ready.length === 3 && ready.every((i) => i.version !== before[0]!.version) ? ready : undefined
  }, { what: 'web on its new version everywhere', timeoutMs: 30_000 }))
  // The kill: web on b dies; the node restarts it.
  const onB = (await s.instances('a', 'web', 'ready')).find((i) => i.node === 'b')!
  await waitFor(async () => await fetch(`http://${onB.address!}/die`).then(async (r) => await r.text()), { what: `web on b to answer /die at ${onB.address!}` })
  await s.c.explainFailure(async () => await waitFor(async () => {
    const i = (await s.instances('a', 'web', 'ready')).find((x) => x.node === 'b')
    return (i?.restarts ?? 0) >= 1 ? i : undefined
  }, { what: 'web on b restarted and ready' }))

  const events = await waitFor(async () => {
    const es = await client.events({ since: new Date(at1 - 60_000) })
    return es !== undefined && instanceEvents(es).some((e) => e.node === 'b' && e.restarts >= 1 && e.state === 'ready') ? es : undefined
  }, { what: 'the restart of web on b in the journal' })
  t.deepEqual(events.unreachable, [])
  for (let i = 1; i < events.length; i++) t.true(events[i]!.at >= events[i - 1]!.at, 'in time order')
  t.deepEqual([...new Set(events.map((e) => e.node))].sort(), ['a', 'b', 'c'], 'every node\'s journal is merged')
  const applied = events.filter((e) => e.kind === 'spec-applied' && e.at > at1)
  t.deepEqual([...new Set(applied.map((e) => e.node))].sort(), ['a', 'b', 'c'], 'every node applied the push')
  // On each node: the old web stopped, then the new one started and got ready, after the push was applied there.
  for (const node of ['a', 'b', 'c']) {
    const mine = instanceEvents(events).filter((e) => e.node === node && e.at > at1)
    const appliedHere = applied.find((e) => e.node === node)!
    const stopped = mine.findIndex((e) => e.state === 'stopped' && e.version === before[0]!.version)
    const ready = mine.findIndex((e) => e.state === 'ready' && e.version !== before[0]!.version)
    t.true(stopped >= 0 && ready > stopped, `${node}: ${mine.map((e) => e.text).join(' | ')}`)
    t.true(mine[ready]!.at >= appliedHere.at)
  }
  // The kill on b, with its reason, then the restart.
  const onBEvents = instanceEvents(events).filter((e) => e.node === 'b' && e.at > at1)
  const died = onBEvents.findIndex((e) => e.state !== 'ready' && e.state !== 'starting' && e.state !== 'stopping' && e.state !== 'stopped' && /SIGKILL|signal|killed/i.test(e.reason ?? ''))
  t.true(died >= 0, onBEvents.map((e) => e.text).join(' | '))
  t.true(onBEvents.slice(died).some((e) => e.state === 'ready' && e.restarts >= 1))
  t.log(events.filter((e) => e.at > at1).map((e) => `${e.node} ${e.text}`).join('\n'))

  // The replay at the settled moment says what the REPL said then.
  const then = (await client.state({ at: new Date(at1) })).state as StateAt
  t.is(then.kind, 'at')
  const replayed = then.replayed.instances.filter((i) => i.service === 'web').map((i) => [i.instance, i.node, i.state, i.address]).sort()
  const said = services1.services.find((x) => x.name === 'web')!.instances.map((i) => [i.instance, i.node, i.state, i.address]).sort()
  if (JSON.stringify(replayed) !== JSON.stringify(said)) {
    // An instance that restarted on its own around the settled moment: its output says why.
    for (const node of ['a', 'b', 'c']) t.log(`${node}: ${(await readFile(join(s.c.node(node).dir, 'data', 'logs', `web@${node}.log`), 'utf8').catch((err) => String(err))).split('\n').slice(-15).join('\n')}`)
  }
  t.deepEqual(replayed, said)
  t.deepEqual(Object.fromEntries(Object.entries(then.replayed.members).map(([id, m]) => [id, m.status])), Object.fromEntries(nodes1.map((n) => [n.id, n.status])))
  t.deepEqual([...new Set(Object.values(then.replayed.specByNode))], [then.replayed.spec!.version], 'every node ran the same spec then')
  // And filters: by service, by node.
  const webOnly = await client.events({ since: new Date(at1), service: 'web' })
  t.true(webOnly!.length > 0 && webOnly!.every((e) => e.kind === 'instance' || e.kind === 'rollout' || e.kind === 'spec-applied'))
  const cOnly = await client.events({ since: new Date(at1), node: 'c' })
  t.true(cOnly!.length > 0 && cOnly!.every((e) => e.node === 'c'))
})

test.serial('journal: survives a node restart; state() names every member and service; operators are journaled', async (t) => {
  const s = await specDirCluster(t)
  await s.write('services/web.json', web('hi'))
  await s.write('services/worker.json', { run: { command: 'node', args: ['-e', 'setInterval(() => {}, 1000)'] }, placement: { kind: 'singleton' } })
  for (const name of ['a', 'b', 'c']) await s.c.start({ name, image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.c.explainFailure(async () => await s.waitInstances('a', 'web', 3))
  const client = await s.c.client('a')
  await client.sync()
  const c = s.c.node('c')
  const before = await waitFor(async () => {
    const es = await client.events({ node: 'c', since: '1h' })
    return es !== undefined && es.some((e) => e.kind === 'instance' && e.state === 'ready') ? es : undefined
  }, { what: 'web ready in c\'s journal' })
  await c.proc.stop(5000)
  await s.c.waitForView({ c: 'left' }, { on: ['a'] })
  await s.c.start({ name: 'c', address: c.address, image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  const after = await waitFor(async () => {
    const es = await client.events({ node: 'c', since: '1h' })
    return es !== undefined && es.filter((e) => e.kind === 'node' && e.what === 'started').length === 2 ? es : undefined
  }, { what: 'c\'s journal from before and after its restart' })
  const key = (e: JournalEvent): string => `${e.at}/${e.seq}`
  t.deepEqual(after.slice(0, before.length).map(key), before.map(key), 'what c journaled before the restart is still there')
  t.true(after.some((e) => e.kind === 'node' && e.what === 'stopped'), 'its graceful stop too')
  const all = await client.events({ since: '1h' })
  t.true(all!.some((e) => e.kind === 'operator' && e.operator === 'op' && e.action === 'sync'), 'cluster.sync() is journaled with who asked')
  t.true(all!.some((e) => e.kind === 'member' && e.member === 'c' && e.status === 'left'), 'c leaving is in the others\' journals')

  const state = await waitFor(async () => {
    const st = await client.state()
    const text = String(st)
    return ['a', 'b', 'c'].every((n) => text.includes(n)) && /web \(every\)/.test(text) && /worker \(singleton\)/.test(text) ? st : undefined
  }, { what: 'the state text to name everything' })
  const text = String(state)
  for (const n of ['a', 'b', 'c']) t.true(text.includes(s.c.node(n).address), `member ${n} with its address`)
  t.regex(text, /^members \(3\):/m)
  t.regex(text, /^hubs: /m)
  t.regex(text, /^spec: dir:/m)
  t.regex(text, /^phase: running/m)
  t.regex(text, /^recent events \(\d+\):/m)
  t.log(text)
})

const run = promisify(execFile)
const has = (cmd: string): boolean => { try { execFileSync('sh', ['-c', `command -v ${cmd}`]); return true } catch { return false } }
const inTmux = has('tmux') ? test.serial : test.serial.skip

/** A tmux server of our own running `command`; what the screen shows. */
async function terminal (command: string): Promise<{ line: (text: string) => Promise<void>, screen: () => Promise<string>, close: () => Promise<void> }> {
  const socket = `origin-journal-${process.pid}-${Math.random().toString(36).slice(2)}`
  const tmux = async (...args: string[]): Promise<string> => (await run('tmux', ['-L', socket, ...args])).stdout
  await tmux('new-session', '-d', '-s', 's', '-x', '200', '-y', '50', command)
  return {
    line: async (text) => { await tmux('send-keys', '-t', 's', '-l', text); await tmux('send-keys', '-t', 's', 'Enter') },
    screen: async () => await tmux('capture-pane', '-p', '-t', 's'),
    close: async () => { await tmux('kill-server').catch(() => {}) }
  }
}

inTmux('journal: while the REPL is open, a push prints spec applied and rollout lines above the prompt; cluster.quiet() stops them', async (t) => {
  const s = await specDirCluster(t)
  await s.write('services/web.json', web('hi'))
  await s.c.start({ name: 'a', image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive' })
  await s.c.explainFailure(async () => await s.waitInstances('a', 'web', 1))
  const term = await terminal(`env TERM=xterm-256color XDG_CONFIG_HOME=${s.c.dir}/config ${process.execPath} ${cliPath} repl --keys ${s.c.keys} --as op --connect ${s.c.node('a').address}; sleep 600`)
  t.teardown(async () => { await term.close() })
  const waitScreen = async (ok: (screen: string) => boolean, what: string): Promise<string> => {
    let last = ''
    try {
      return await waitFor(async () => { last = await term.screen(); return ok(last) ? last : undefined }, { what, timeoutMs: 20_000 })
    } catch (err) { throw new Error(`${(err as Error).message}\n--- screen ---\n${last}`) }
  }
  await waitScreen((x) => /^a>$/m.test(x), 'the prompt')
  await s.write('services/web.json', web('hello'))
  const shown = await waitScreen((x) => /\[.*a\] spec applied: dir:/.test(x) && /\[.*a\] web@a ready at .*version/.test(x) && /^a>$/m.test(x), 'the live lines and the prompt under them')
  t.regex(shown, /spec applied[\s\S]*web@a ready[\s\S]*\na>$/m, 'the prompt stays below the lines')
  await term.line('cluster.quiet()')
  await waitScreen((x) => x.includes('quiet: spec and rollout lines are no longer printed'), 'quiet to answer')
  const client = await s.c.client('a')
  const appliedVersions = async (): Promise<string[]> => (await client.events({ since: '10m' }))!.flatMap((e) => e.kind === 'spec-applied' ? [e.version] : [])
  await s.write('services/web.json', web('bonjour'))
  const whileQuiet = (await waitFor(async () => { const v = await appliedVersions(); return v.length === 3 ? v : undefined }, { what: 'the push made while quiet to be applied' }))[2]!
  await term.line('cluster.quiet()')
  await waitScreen((x) => x.includes('spec applied/rejected and rollout steps are printed as they happen'), 'quiet to switch off')
  await s.write('services/web.json', web('salut'))
  const after = (await waitFor(async () => { const v = await appliedVersions(); return v.length === 4 ? v : undefined }, { what: 'the next push to be applied' }))[3]!
  const last = await waitScreen((x) => x.includes(`spec applied: ${after}`), 'the line for the push after quiet was switched off')
  t.false(last.includes(whileQuiet), 'nothing was printed for the push made while quiet')
})
