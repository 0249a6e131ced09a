/**
 * Network faults: a node cut off from the others by iptables rules on its loopback
 * address (root only; every rule is removed afterwards, whatever happens).
 */
import test from 'ava'
import { chmod, mkdir, mkdtemp, readlink, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { TestCluster } from './helpers/cluster'
import { iptablesWorks, isolate } from './helpers/iptables'
import { waitFor } from './helpers/wait'
import { running as runningProcs } from './helpers/procs'

const usable = iptablesWorks()
const faultTest = usable ? test.serial : test.serial.skip
if (!usable) console.log('faults: skipped: needs root and iptables (CI has both)')



faultTest('faults: a node cut off by the network is seen dead, gives its singleton up first, and rejoins when the network heals', async (t) => {
  const c = await TestCluster.create()
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-faults-'))
  let heal = (): void => {}
  t.teardown(async () => { heal(); await c.cleanup(); await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'services'))
  await writeFile(join(dir, 'cluster.json'), JSON.stringify({ name: 'test' }))
  await chmod(dir, 0o755) // the service runs as its own user: what it runs must be readable by it
  await writeFile(join(dir, 'single.js'), 'setInterval(() => {}, 1000)')
  await writeFile(join(dir, 'services', 'single.json'), JSON.stringify({ run: { command: 'node', args: [join(dir, 'single.js')] }, placement: { kind: 'singleton' }, stopGraceMs: 500 }))
  for (const n of ['a', 'b', 'c']) await c.start({ name: n, image: { specDir: dir } })
  await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  // As the host sees them (instances print their PID namespace's pids): which node runs each
  // live copy, from the node data dir its working directory is in.
  const running = async (): Promise<Array<{ pid: number, node: string }>> => {
    const pids = await runningProcs('node', join(dir, 'single.js'))
    const cwds = await Promise.all(pids.map(async (pid) => await readlink(`/proc/${pid}/cwd`).catch(() => '')))
    return pids.map((pid, i) => ({ pid, node: ['a', 'b', 'c'].find((n) => cwds[i].startsWith(c.node(n).dir + '/')) ?? '?' }))
  }
  // Settled: one copy, the same process for a second. (A node that started before its seed
  // listened formed a cluster of its own for a moment, and may have run a copy it then gave up.)
  const first = await waitFor(async () => {
    const before = await running()
    if (before.length !== 1 || before[0].node === '?') return undefined
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const after = await running()
    return after.length === 1 && after[0].pid === before[0].pid ? after[0] : undefined
  }, { what: 'the singleton to run on one node, settled', timeoutMs: 30_000 })
  const cut = first.node
  const others = ['a', 'b', 'c'].filter((n) => n !== cut)
  heal = isolate(c.node(cut).address.split(':')[0])
  // Throughout: never two. The cut-off node gives it up, the others start it.
  const moved = await c.explainFailure(async () => await waitFor(async () => {
    const now = await running()
    t.true(now.length <= 1, `never two singletons: ${JSON.stringify(now)}`)
    // (a process caught between spawn and exec has no node dir yet: look again)
    return now.length === 1 && others.includes(now[0].node) ? now[0] : undefined
  }, { intervalMs: 25, timeoutMs: 20_000, what: 'the singleton to move to the majority side' }))
  t.true(others.includes(moved.node))
  // Dead, or already downed (left) by the majority if the machine was slow to get here.
  for (const o of others) await waitFor(async () => ['dead', 'left'].includes((await c.view(o))[cut]?.status ?? ''), { what: `${o} to see ${cut} dead` })
  t.regex(await c.node(cut).log(), /stopping single-0 at once: fenced: in touch with 1 of 3 members: not a majority/)
  heal()
  await c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  // After the heal the singleton stays where it is, still alone.
  await c.explainFailure(async () => {
    for (let i = 0; i < 20; i++) {
      const now = await running()
      if (now.length !== 1 || now[0].node !== moved.node) throw new Error(`after the heal: ${JSON.stringify(now)}, expected only on ${moved.node}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })
  t.regex(await c.node(cut).log(), /refuting: the cluster says I am (suspect|dead)/)
})
