/**
 * A node's V8 flags and environment (node/launch): the ones launchNode gives a checkout's
 * node, the same ones as NODE_OPTIONS for an `origin-node` executable, and never passed on
 * to programs a node runs that are not its own node processes.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { launchNode, NODE_ENV, NODE_FLAGS, NODE_OPTIONS, withoutNodeFlags } from '../../node/launch'

// The young generation's size in a process: what --max-semi-space-size bounds.
const NEW_SPACE = `const v8 = require('v8'); let keep = []; let max = 0
for (let r = 0; r < 30; r++) { for (let i = 0; i < 100000; i++) keep.push({ i }); if (keep.length > 300000) keep = []
  max = Math.max(max, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size) }
console.log(max)`

async function newSpaceMiB (env: NodeJS.ProcessEnv): Promise<number> {
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', NEW_SPACE], { env })
  return Number(stdout) / 2 ** 20
}

test('launch: NODE_OPTIONS gives a process the young generation NODE_FLAGS give, and withoutNodeFlags takes it away', async (t) => {
  t.deepEqual(NODE_FLAGS, ['--max-semi-space-size=1'])
  t.is(NODE_OPTIONS, '--max-semi-space-size=1', 'only what node takes in NODE_OPTIONS (it refuses to start otherwise)')
  const base = withoutNodeFlags(process.env)
  const flagged = await newSpaceMiB({ ...base, NODE_OPTIONS })
  t.true(flagged <= 2, `new space of ${flagged} MiB with NODE_OPTIONS=${NODE_OPTIONS}`)
  const passedOn = await newSpaceMiB(withoutNodeFlags({ ...base, NODE_OPTIONS }))
  t.true(passedOn > 2, `new space of ${passedOn} MiB once the flags are taken out`)
})

test('launch: withoutNodeFlags keeps every other option and variable', (t) => {
  t.deepEqual(withoutNodeFlags({ PATH: '/bin', NODE_OPTIONS: `--max-old-space-size=512 ${NODE_OPTIONS}  --enable-source-maps` }), { PATH: '/bin', NODE_OPTIONS: '--max-old-space-size=512 --enable-source-maps' })
  t.deepEqual(withoutNodeFlags({ PATH: '/bin', NODE_OPTIONS }), { PATH: '/bin' }, 'nothing left: no variable')
  t.deepEqual(withoutNodeFlags({ PATH: '/bin' }), { PATH: '/bin' })
  const env = { NODE_OPTIONS }
  withoutNodeFlags(env)
  t.is(env.NODE_OPTIONS, NODE_OPTIONS, 'the given environment is not changed')
})

/** MALLOC_ARENA_MAX as a process started by launchNode sees it. */
async function arenasSeen (env?: NodeJS.ProcessEnv): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-launch-'))
  try {
    const logFile = join(dir, 'out')
    const p = launchNode(['-e', 'process.stdout.write(String(process.env.MALLOC_ARENA_MAX))'], { executable: process.execPath, logFile, env })
    await p.exited
    return await readFile(logFile, 'utf8')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('launch: a launched node has NODE_ENV unless its environment says otherwise; withoutNodeFlags takes NODE_ENV\'s values away, not others', async (t) => {
  t.deepEqual(NODE_ENV, { MALLOC_ARENA_MAX: '2' })
  t.is(await arenasSeen(), process.env.MALLOC_ARENA_MAX ?? '2')
  t.is(await arenasSeen({ MALLOC_ARENA_MAX: '8' }), '8', 'the operator\'s own value wins')
  t.deepEqual(withoutNodeFlags({ PATH: '/bin', MALLOC_ARENA_MAX: '2' }), { PATH: '/bin' })
  t.deepEqual(withoutNodeFlags({ PATH: '/bin', MALLOC_ARENA_MAX: '4' }), { PATH: '/bin', MALLOC_ARENA_MAX: '4' }, 'a value of the operator\'s own stays')
})
