/**
 * A node's V8 flags (node/launch): the ones launchNode gives a checkout's node, the same
 * ones as NODE_OPTIONS for an `origin-node` executable, and never passed on to programs
 * a node runs that are not its own node processes.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { NODE_FLAGS, NODE_OPTIONS, withoutNodeFlags } from '../../node/launch'

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
