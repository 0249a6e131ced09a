import test from 'ava'
import { spawn } from 'node:child_process'
import { readlinkSync } from 'node:fs'
import { membersOf, procTable, startTimeOf } from '../../node/supervisor/procfs'
import { waitFor } from '../helpers/wait'

// The kernel reuses a gone namespace's inode number, so a scan shared by every instance may
// list an earlier namespace's processes under the number a new one now has. Here the
// "namespace" is our own, and its "init" a process started after the shared scan.
test('procfs: a shared scan taken before a namespace\'s init started is not used for it', async (t) => {
  if (process.platform !== 'linux') { t.pass('no /proc here'); return }
  await procTable(true) // the shared scan, from before the child
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  const pid = child.pid as number
  const startTime = await waitFor(() => startTimeOf(pid), { what: 'the child to be in /proc' })
  const ns = readlinkSync('/proc/self/ns/pid')
  const members = await membersOf({ kind: 'pidns', ns, init: { pid, startTime } })
  t.true(members.some((e) => e.pid === pid), 'the init started after the cached scan is among the members')
})
