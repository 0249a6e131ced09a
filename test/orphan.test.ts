/**
 * A node started by launchNode (the demo, tests, benchmarks) leaves and exits once the
 * process that started it is gone, even when that process was killed with SIGKILL and
 * could not stop its nodes. A node started otherwise (systemd, a shell) is not affected.
 */
import test from 'ava'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { waitFor } from './helpers/wait'

/** Whether `pid` runs: a zombie nobody has reaped yet has ended. */
function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

// The parent: makes a test cluster of one node, says where it is, then waits to be killed.
const PARENT = `
const { TestCluster } = require(${JSON.stringify(join(__dirname, 'helpers', 'cluster.js'))})
TestCluster.create({ cluster: 'orphan' }).then(async (c) => {
  const n = await c.start({ name: 'a' })
  await c.client('a')
  process.stdout.write(JSON.stringify({ pid: n.proc.pid, log: n.logFile, dir: c.dir }) + '\\n')
  setInterval(() => {}, 60000)
})
`

test('a node whose launching process is killed with SIGKILL leaves the cluster and exits', async (t) => {
  const parent = spawn(process.execPath, ['-e', PARENT], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => parent.once('exit', resolve))
  let said = ''
  parent.stdout.on('data', (chunk: Buffer) => { said += chunk.toString() })
  const node = await waitFor(() => said.includes('\n') ? JSON.parse(said) as { pid: number, log: string, dir: string } : undefined, { timeoutMs: 30_000, what: 'the parent to start its node' })
  t.teardown(async () => {
    if (alive(node.pid)) process.kill(node.pid, 'SIGKILL')
    await rm(node.dir, { recursive: true, force: true })
  })
  t.true(alive(node.pid))
  parent.kill('SIGKILL')
  await exited
  const started = Date.now()
  await waitFor(() => !alive(node.pid), { timeoutMs: 15_000, what: 'the orphaned node to exit' })
  t.log(`the node exited ${Date.now() - started} ms after its parent was killed`)
  const log = await readFile(node.log, 'utf8')
  t.regex(log, /is gone: leaving the cluster/)
})
