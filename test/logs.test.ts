import test from 'ava'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { TestCluster } from './helpers/cluster'
import { waitFor } from './helpers/wait'
import type { Cluster } from '../repl/client'
import { localLogs, type LogItem } from '../node/control/logs'
import { RotatingLog, stampLine } from '../node/logfile'

const sleeperJs = resolve(__dirname, '..', '..', 'test', 'fixtures', 'procs', 'sleeper.js')

interface Setup { c: TestCluster, dir: string, downloads: string, write (path: string, value: unknown): Promise<void>, remove (path: string): Promise<void> }

async function setup (t: { teardown (fn: () => Promise<void>): void }): Promise<Setup> {
  const c = await TestCluster.create()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-logs-'))
  t.teardown(async () => { await c.cleanup(); await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'spec', 'services'), { recursive: true })
  const write = async (path: string, value: unknown): Promise<void> => { await writeFile(join(dir, 'spec', path), JSON.stringify(value, null, 2)) }
  await write('cluster.json', { name: 'test', minNodes: 1 })
  return { c, dir: join(dir, 'spec'), downloads: join(dir, 'downloads'), write, remove: async (path) => { await rm(join(dir, 'spec', path), { force: true }) } }
}

const sleeper = (placement: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  run: { command: 'node', args: [sleeperJs] }, placement, stopGraceMs: 2000, ...extra
})

/** The nodes where `service` has a ready instance, as `client`'s node reports them. */
async function readyOn (client: Cluster, service: string): Promise<string[]> {
  const s = (await client.services()).services.find((x) => x.name === service)
  return (s?.instances ?? []).filter((i) => i.state === 'ready').map((i) => i.node).sort()
}

async function rejection (p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a rejection')
}

test.serial('logs: a singleton that moved away, then was removed, still has its log on the nodes it ran on', async (t) => {
  const s = await setup(t)
  await s.c.start({ name: 'a', labels: { zone: 'a' }, image: { specDir: s.dir } })
  await s.c.start({ name: 'b', labels: { zone: 'b' }, image: { specDir: s.dir } })
  await s.c.waitForView({ a: 'alive', b: 'alive' })
  const client = await s.c.client('b')
  await s.write('services/one.json', sleeper({ kind: 'singleton', labels: { zone: 'a' } }))
  await s.write('services/zoned.json', sleeper({ kind: 'every', labels: { zone: 'b' } }))
  await waitFor(async () => (await readyOn(client, 'one')).join() === 'a', { what: 'one ready on a' })
  // Ready (no health check) is as soon as it is spawned: under load the sleeper may not have
  // set its SIGTERM handler yet, and would die of the signal without saying so.
  await waitFor(async () => (await readFile(await client.logs('a', 'one', { dir: s.downloads }), 'utf8')).includes(' out sleeper started pid '), { what: 'the sleeper on a to have started' })
  await s.write('services/one.json', sleeper({ kind: 'singleton', labels: { zone: 'b' } }))
  await waitFor(async () => (await readyOn(client, 'one')).join() === 'b', { what: 'one moved to b' })

  // Asked through b, answered by a, where `one` no longer runs.
  const fromA = await waitFor(async () => {
    const text = await readFile(await client.logs('a', 'one', { dir: s.downloads }), 'utf8')
    return text.includes(' out sleeper got SIGTERM') ? text : undefined
  }, { what: "a's log of one to show it stopped" })
  t.regex(fromA, /^# one-0 on a\n/)
  t.regex(fromA, / out sleeper started pid \d+/)

  await s.remove('services/one.json')
  await waitFor(async () => (await readyOn(client, 'one')).length === 0, { what: 'one stopped everywhere' })
  const fromB = await waitFor(async () => {
    const text = await readFile(await client.logs('b', 'one', { dir: s.downloads }), 'utf8')
    return text.includes(' out sleeper got SIGTERM') ? text : undefined
  }, { what: "b's log of one to show it stopped" })
  t.regex(fromB, / out sleeper started pid \d+/)

  const never = await rejection(client.logs('a', 'zoned', { dir: s.downloads }))
  t.is(never.code, 'E_NOT_FOUND')
  t.is(never.message, 'zoned has never run on a; it runs on b')
})

test.serial("logs: cluster.logs(node, 'node') is the node's own log", async (t) => {
  const s = await setup(t)
  await s.c.start({ name: 'a', image: { specDir: s.dir } })
  const client = await s.c.client('a')
  const text = await readFile(await client.logs('a', 'node', { dir: s.downloads }), 'utf8')
  t.regex(text, /^# node on a\n/)
  t.regex(text, / info +a\/transport: listening on /)
  const last = await readFile(await client.logs('a', 'node', { lines: 1, dir: s.downloads }), 'utf8')
  t.is(last.split('\n').filter((l) => l !== '' && !l.startsWith('# ')).length, 1, `one line, got ${JSON.stringify(last)}`)
})

test.serial('logs: a followed log picks up an instance that starts on that node later', async (t) => {
  const s = await setup(t)
  await s.write('services/web.json', sleeper({ kind: 'replicas', count: 1 }, { resources: { maxInstancesPerNode: 2 } }))
  await s.c.start({ name: 'a', image: { specDir: s.dir } })
  const client = await s.c.client('a')
  await waitFor(async () => (await readyOn(client, 'web')).length === 1, { what: 'web-0 ready' })
  const path = await client.logs('a', 'web', { follow: true, dir: s.downloads })
  t.teardown(async () => { await client.unfollow() })
  t.regex(await readFile(path, 'utf8'), /^# web-0 on a\n\S+ origin started pid \d+/, 'the history is there when the call returns')
  await s.write('services/web.json', sleeper({ kind: 'replicas', count: 2 }, { resources: { maxInstancesPerNode: 2 } }))
  const text = await waitFor(async () => {
    const text = await readFile(path, 'utf8')
    return /# web-1 on a\n(.*\n)*\S+ out sleeper started pid \d+/.test(text) ? text : undefined
  }, { what: 'web-1 to show up in the followed file' })
  t.is(text.match(/^# web-0 on a$/gm)?.length, 1, 'web-0 is not sent twice')
  await client.unfollow()
  t.deepEqual(await readdir(join(s.downloads, 'a')), ['web.log'], 'no temp file is left beside it')
})

test.serial('logs: a failed download leaves no file and keeps the earlier download', async (t) => {
  const s = await setup(t)
  await s.write('services/web.json', sleeper({ kind: 'singleton' }))
  await s.c.start({ name: 'a', image: { specDir: s.dir } })
  const client = await s.c.client('a')
  const path = await waitFor(async () => {
    const path = await client.logs('a', 'web', { dir: s.downloads })
    return (await readFile(path, 'utf8')).includes(' out sleeper started') ? path : undefined
  }, { what: 'a download of web with its first line' })
  const earlier = await readFile(path, 'utf8')

  const unknown = await rejection(client.logs('a', 'nosuch', { dir: s.downloads }))
  t.is(unknown.code, 'E_NOT_FOUND')
  t.is(unknown.message, 'nosuch has never run on a')
  const refused = await rejection(client.logs('a', 'web', { since: 'yesterday', dir: s.downloads }))
  t.is(refused.code, 'E_PAYLOAD_INVALID')
  t.deepEqual(await readdir(join(s.downloads, 'a')), ['web.log'], 'no file for the unknown service, no temp file')
  t.is(await readFile(path, 'utf8'), earlier, 'the earlier download is intact')

  const elsewhere = await rejection(client.logs('zz', 'web', { dir: s.downloads }))
  t.is(elsewhere.code, 'E_NOT_FOUND')
  t.deepEqual(await readdir(s.downloads), ['a'], 'not even a directory for a node that does not exist')
})

/** localLogs on a data dir of its own, as node `a` with an empty member table. */
function logsOf (dataDir: string, service: string, o: { follow?: boolean, signal?: AbortSignal } = {}): AsyncGenerator<LogItem> {
  const membership = { id: 'a', table: () => ({}) }
  return localLogs({ dataDir, membership }, { node: 'a', service, follow: o.follow }, o.signal ?? new AbortController().signal)
}

async function collect (items: AsyncIterable<LogItem>): Promise<Array<{ instance: string, text: string }>> {
  const chunks: Array<{ instance: string, text: string }> = []
  for await (const item of items) if (!('caughtUp' in item)) chunks.push(item)
  return chunks
}

test('logs: instance files come by instance in a stable order, rotated parts in order, build logs only by their own name', async (t) => {
  const dataDir = await mkdtemp(join(os.tmpdir(), 'origin-logs-'))
  t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const file = (name: string, text: string): Promise<void> => writeFile(join(dataDir, 'logs', name), text)
  await mkdir(join(dataDir, 'logs'))
  await Promise.all([
    file('web-10.log', 'ten\n'), file('web-2.log.1', 'two, older\n'), file('web-2.log', 'two\n'), file('web@b.log', 'every\n'),
    file('webby-0.log', 'another service\n'), file('build-web.log', 'npm ci\n')
  ])
  const chunks = await collect(logsOf(dataDir, 'web'))
  t.deepEqual(chunks, [
    { instance: 'web-2', text: 'two, older\ntwo\n' },
    { instance: 'web-10', text: 'ten\n' },
    { instance: 'web@b', text: 'every\n' }
  ])
  t.deepEqual(await collect(logsOf(dataDir, 'build-web')), [{ instance: 'build-web', text: 'npm ci\n' }])
  await t.throwsAsync(collect(logsOf(dataDir, 'nosuch')), { message: 'nosuch has never run on a' })
})

test('logs: following a log across rotations loses no line and repeats none', async (t) => {
  const dataDir = await mkdtemp(join(os.tmpdir(), 'origin-logs-'))
  t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const log = new RotatingLog({ path: join(dataDir, 'logs', 'web-0.log'), maxBytes: 200, keep: 5 })
  t.teardown(async () => { await log.close() })
  const line = (n: number): string => stampLine('out', `line ${n}`)
  for (let n = 0; n < 3; n++) log.write(line(n))
  const abort = new AbortController()
  t.teardown(() => { abort.abort() })
  let text = ''
  let caughtUp = false
  const following = (async () => {
    for await (const item of logsOf(dataDir, 'web', { follow: true, signal: abort.signal })) {
      if ('caughtUp' in item) caughtUp = true
      else text += item.text
    }
  })()
  await waitFor(() => caughtUp, { what: 'the history to be sent' })
  // Several rotations between two polls: the rest of the file that was being read is in web-0.log.2 or so by then.
  for (let n = 3; n < 15; n++) log.write(line(n))
  await waitFor(() => text.includes(' out line 14\n'), { what: 'the last line' })
  abort.abort()
  await following
  t.deepEqual(text.split('\n').filter((l) => l !== '').map((l) => l.replace(/^\S+ out /, '')), Array.from({ length: 15 }, (_, n) => `line ${n}`))
})
