/**
 * A paused node (SIGSTOP: not scheduled, but alive) cannot stop its singleton itself; its
 * watchdog does, before the others declare it dead and start a replacement. Real nodes,
 * real processes: what runs is counted as the host sees it, and a ledger the singleton
 * writes shows when each copy was alive.
 */
import test from 'ava'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { fastMembership } from './helpers/cluster'
import { running } from './helpers/procs'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

const ledgerJs = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs', 'ledger.js')

interface Span { token: string, node: string, from: number, to: number }

/** Each copy's span, from its first to its last line, in order of start. */
function spans (ledger: string): Span[] {
  const byToken = new Map<string, Span>()
  for (const line of ledger.split('\n').filter(Boolean)) {
    const [at, token, node] = line.split(' ')
    const s = byToken.get(token) ?? { token, node, from: Number(at), to: Number(at) }
    s.from = Math.min(s.from, Number(at))
    s.to = Math.max(s.to, Number(at))
    byToken.set(token, s)
  }
  return [...byToken.values()].sort((a, b) => a.from - b.from)
}

test.serial('pause: a node paused for longer than deadAfterMs never runs its singleton beside its replacement', async (t) => {
  const s = await specDirCluster(t)
  // Outside the spec dir (a write there is a spec change), writable by the singleton's own user.
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-pause-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await chmod(dir, 0o755)
  const ledger = join(dir, 'ledger')
  await writeFile(ledger, '')
  await chmod(ledger, 0o666)
  const image = { specDir: s.dir }
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.write('services/single.json', { run: { command: 'node', args: [ledgerJs], env: { LEDGER: ledger } }, placement: { kind: 'singleton' }, restart: { policy: 'always', backoffMs: 100 }, stopGraceMs: 500 })
  const first = await s.c.explainFailure(async () => (await s.waitInstances('a', 'single', 1))[0])
  const victim = first.node
  const observer = ['a', 'b', 'c'].find((n) => n !== victim) as string
  await waitFor(async () => spans(await readFile(ledger, 'utf8')).some((x) => x.node === victim), { what: 'the singleton to write its ledger' })

  // Throughout, sampled as the host sees it: never two copies alive.
  let done = false
  let most = 0
  const seen: string[] = []
  const monitor = waitFor(async () => {
    const pids = await running('node', ledgerJs)
    most = Math.max(most, pids.length)
    if (pids.length > 1) seen.push(`${Date.now()}: ${pids.join(', ')}`)
    return done
  }, { intervalMs: 20, timeoutMs: 120_000, what: 'the end of the test' })

  const node = s.c.node(victim)
  node.proc.signal('SIGSTOP')
  const stoppedAt = Date.now()
  t.teardown(() => { node.proc.signal('SIGCONT') })
  const moved = await s.c.explainFailure(async () => await waitFor(async () => {
    const r = await s.instances(observer, 'single', 'ready')
    return r.length === 1 && r[0].node !== victim ? r[0] : undefined
  }, { timeoutMs: 20_000, what: 'the singleton to start elsewhere' }))
  await waitFor(async () => spans(await readFile(ledger, 'utf8')).some((x) => x.node === moved.node), { what: 'the replacement to write its ledger' })
  const pausedFor = Date.now() - stoppedAt
  // Dead no sooner than suspectAfterMs (the least suspicion timeout) after it stopped answering.
  t.true(pausedFor > fastMembership.suspectAfterMs, `paused for ${pausedFor} ms`)
  node.proc.signal('SIGCONT')

  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  // Back, the node gives its (killed) copy up. Its first gossip may still claim the copy it
  // ran, and the scheduler may then hand the singleton back to it: a handover, one at a time.
  const settled = await s.c.explainFailure(async () => await waitFor(async () => {
    const everywhere = await Promise.all(['a', 'b', 'c'].map(async (n) => await s.instances(n, 'single')))
    const one = everywhere.every((r) => r.length === 1 && r[0].node === everywhere[0][0].node && r[0].state === 'ready')
    return one && (await running('node', ledgerJs)).length === 1 ? everywhere[0][0] : undefined
  }, { timeoutMs: 20_000, what: 'every node to see the one singleton on the same node' }))
  t.log(`moved from ${victim} to ${moved.node}; settled on ${settled.node}`)
  done = true
  await monitor

  t.is(most, 1, `never two copies alive at once: ${seen.join('; ')}`)
  const all = spans(await readFile(ledger, 'utf8'))
  t.log(all.map((x) => `${x.node} ${x.token}: ${x.from - stoppedAt} .. ${x.to - stoppedAt} ms after the pause`).join('\n'))
  for (let i = 1; i < all.length; i++) t.true(all[i].from > all[i - 1].to, `copy ${all[i].token} on ${all[i].node} started after ${all[i - 1].token} on ${all[i - 1].node} ended`)
  const old = all.find((x) => x.node === victim)
  t.true(old !== undefined && old.to - stoppedAt < fastMembership.deadAfterMs, 'the paused node\'s copy ended before the others could declare the node dead')
  const log = await node.log()
  t.regex(log, /watchdog: no renewal from this node for 1\.0 s: SIGKILL to single-0/)
  t.regex(log, /stopping single-0 at once: fenced: this node was not scheduled for \d+\.\d s/)
})

test.serial('pause: a node paused past the fence time but not declared dead loses its singleton, then runs it again itself', async (t) => {
  const s = await specDirCluster(t)
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-pause-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await chmod(dir, 0o755)
  const ledger = join(dir, 'ledger')
  await writeFile(ledger, '')
  await chmod(ledger, 0o666)
  const image = { specDir: s.dir }
  for (const n of ['a', 'b', 'c']) await s.c.start({ name: n, image })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  await s.write('services/single.json', { run: { command: 'node', args: [ledgerJs], env: { LEDGER: ledger } }, placement: { kind: 'singleton' }, restart: { policy: 'always', backoffMs: 100 }, stopGraceMs: 500 })
  const victim = (await s.c.explainFailure(async () => await s.waitInstances('a', 'single', 1)))[0].node
  await waitFor(async () => spans(await readFile(ledger, 'utf8')).length === 1, { what: 'the singleton to write its ledger' })
  const node = s.c.node(victim)
  node.proc.signal('SIGSTOP')
  const stoppedAt = Date.now()
  t.teardown(() => { node.proc.signal('SIGCONT') })
  // Resumed as soon as the watchdog has fenced it: before the others can declare the node dead.
  await waitFor(async () => (await running('node', ledgerJs)).length === 0, { intervalMs: 10, timeoutMs: 5000, what: 'the watchdog to kill the singleton' })
  node.proc.signal('SIGCONT')
  const resumedAt = Date.now()
  t.true(resumedAt - stoppedAt < fastMembership.deadAfterMs, `resumed ${resumedAt - stoppedAt} ms after the pause`)
  const again = await s.c.explainFailure(async () => await waitFor(async () => {
    const all = spans(await readFile(ledger, 'utf8'))
    return all.length === 2 && (await running('node', ledgerJs)).length === 1 ? all : undefined
  }, { timeoutMs: 20_000, what: 'the singleton to run again' }))
  t.log(again.map((x) => `${x.node} ${x.token}: ${x.from - stoppedAt} .. ${x.to - stoppedAt} ms after the pause`).join('\n'))
  t.true(again[1].from > again[0].to, 'one after the other')
  t.is(again[1].node, victim, 'nobody else took it: the node was never declared dead')
  t.regex(await node.log(), /stopping single-0 at once: fenced: this node was not scheduled for/)
})
