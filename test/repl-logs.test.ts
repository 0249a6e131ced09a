import test from 'ava'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { OriginError } from '../node/errors'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

const web = {
  run: { command: 'node', args: ['-e', "console.log('web says hi from ' + process.env.ORIGIN_INSTANCE); setInterval(() => {}, 1000)"] },
  placement: { kind: 'replicas', count: 2 }
}

test.serial('logs: cluster.logs(service) downloads every instance of the service on every node into ./logs/<service>/<node>/', async (t) => {
  const s = await specDirCluster(t)
  await s.write('services/web.json', web)
  for (const name of ['a', 'b', 'c']) await s.c.start({ name, image: { specDir: s.dir }, logLevel: 'info' })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  let running = await s.waitInstances('a', 'web', 2)
  const client = await s.c.client('a')
  const downloads = join(s.dir, 'downloads')
  const path = await waitFor(async () => {
    // Where the two run now: one may still move while the hubs settle after c joined.
    running = await s.instances('a', 'web', 'ready')
    if (running.length !== 2) return undefined
    const p = await client.logs('web', { dir: downloads, since: '10m' })
    const texts = await Promise.all(running.map(async (i) => await readFile(join(p, i.node, `${i.instance}.log`), 'utf8').catch(() => '')))
    return texts.every((text, k) => text.includes(` out web says hi from ${running[k]!.instance}`)) ? p : undefined
  }, { what: 'both instances\' lines, each in its own file under its node' })
  t.is(path, join(downloads, 'web'))
  // A node where an instance ran before it moved keeps its log: that is there too, and nothing else.
  const folders = (await readdir(path)).filter((n) => !n.startsWith('.')).sort()
  for (const node of running.map((i) => i.node)) t.true(folders.includes(node), `${node} has a folder`)
  for (const node of folders) {
    t.true(['a', 'b', 'c'].includes(node), node)
    for (const file of await readdir(join(path, node))) t.regex(file, /^web-\d+\.log$/)
  }

  // A new download replaces the earlier one; lines narrows it.
  const again = await client.logs('web', { dir: downloads, lines: 1 })
  for (const i of running) t.is((await readFile(join(again, i.node, `${i.instance}.log`), 'utf8')).split('\n').filter(Boolean).length, 1)

  const unknown = await t.throwsAsync(client.logs('nosuch', { dir: downloads })) as OriginError
  t.is(unknown.code, 'E_NOT_FOUND')
  t.regex(unknown.message, /nosuch has no logs on any node/)
  t.deepEqual((await readdir(downloads)).sort(), ['web'], 'nothing left for a failed download')
  const follow = await t.throwsAsync(client.logs('web', { follow: true, dir: downloads })) as OriginError
  t.is(follow.code, 'E_ARGS')

  // A folder that is not a download of the service is not replaced.
  await writeFile(join(downloads, 'mine'), 'keep me')
  const mine = await t.throwsAsync(client.logs('mine', { dir: downloads })) as OriginError
  t.is(mine.code, 'E_ARGS')
  t.is(await readFile(join(downloads, 'mine'), 'utf8'), 'keep me')
})
