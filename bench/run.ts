/** `npm run bench`: prints figures, next to floors for this kind of machine. Never pass/fail. */
import os from 'node:os'
import { benchCluster } from './cluster'
import { benchSpec } from './spec'
import { benchServices } from './services'
import { benchState } from './state'
import { benchImage } from './image'
import { benchRepl } from './repl'
import { benchProxy } from './proxy'
import { benchContainers } from './containers'
import { benchMembership } from './membership'
import { EXECUTABLE_NOTE, rerunUnderFreshNode } from './fresh-node'

async function main (): Promise<void> {
  if (await rerunUnderFreshNode()) return
  console.log(`origin benchmarks: ${os.cpus().length} cpus, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ${EXECUTABLE_NOTE}`)
  const only = process.argv[2]
  if (only === undefined || only === 'cluster') for (const size of [3, 10]) await benchCluster(size)
  if (only === undefined || only === 'spec') await benchSpec()
  if (only === undefined || only === 'services') await benchServices()
  if (only === undefined || only === 'state') await benchState()
  if (only === undefined || only === 'image') await benchImage()
  if (only === undefined || only === 'repl') await benchRepl()
  if (only === undefined || only === 'proxy') await benchProxy()
  if (only === undefined || only === 'containers') await benchContainers()
  if (only === undefined || only === 'membership') await benchMembership(5)
}

main().catch((err) => { console.error(err); process.exitCode = 1 })
