/**
 * `origin demo`: a local cluster of 3 nodes on loopback with throwaway keys (made on
 * first run in .demo/, kept out of git), then the REPL connected to it. Leaving the REPL
 * stops the nodes cleanly.
 */
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { connectCluster, type Cluster } from '../../repl/client'
import { startSession } from '../../repl/session'
import { OriginError, errorMessage } from '../errors'
import { initKeys, issueOperator } from '../keys'
import { launchNode, type NodeProcess } from '../launch'
import { parse, type Command } from './args'

const usage = `usage: origin demo [--dir DIR] [--nodes N] [--base-port PORT]

Boots a local cluster on 127.0.0.1 with throwaway keys and opens the REPL on it.
Leaving the REPL (.exit or Ctrl-D) stops every node.

  --dir DIR         where keys, node data and logs go (default: .demo in the project)
  --nodes N         how many nodes (default 3)
  --base-port PORT  first node's port; the others follow (default 7401)
  --spec DIR        spec directory the nodes run, watched for edits (default: the project's specs/)`

const projectRoot = resolve(__dirname, '..', '..', '..')

async function waitForMembers (address: string, keys: string, count: number, timeoutMs: number): Promise<Cluster> {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer yet'
  while (Date.now() < deadline) {
    try {
      const cluster = await connectCluster({ keys, as: 'demo', address, timeoutMs: 1000 })
      for (;;) {
        const alive = (await cluster.nodes()).filter((n) => n.status === 'alive').length
        // And the spec read (applied, or rejected with why): the first thing typed sees it.
        const spec = alive >= count ? await cluster.spec() : undefined
        if (spec !== undefined && (spec.applied !== undefined || spec.lastRejected !== undefined)) return cluster
        last = alive < count ? `${alive} of ${count} nodes alive` : 'the spec not read yet'
        if (Date.now() > deadline) break
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      cluster.close()
    } catch (err) {
      last = errorMessage(err)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
  throw new OriginError('E_TIMEOUT', `the demo cluster did not form within ${timeoutMs / 1000} s (${last})`)
}

export const demoCommand: Command = {
  usage,
  async run (argv) {
    const { values } = parse(argv, { dir: { type: 'string' }, nodes: { type: 'string' }, 'base-port': { type: 'string' }, spec: { type: 'string' } }, usage)
    const dir = resolve(values.dir ?? join(projectRoot, '.demo'))
    const count = Number(values.nodes ?? 3)
    const basePort = Number(values['base-port'] ?? 7401)
    if (!Number.isInteger(count) || count < 1 || count > 50) throw new OriginError('E_ARGS', `--nodes must be 1..50, got ${values.nodes ?? ''}`)
    if (!Number.isInteger(basePort) || basePort < 1 || basePort + count > 65535) throw new OriginError('E_ARGS', `--base-port must be a port, got ${values['base-port'] ?? ''}`)
    const keys = join(dir, 'keys')
    const specDir = resolve(values.spec ?? join(projectRoot, 'specs'))
    if (!existsSync(join(keys, 'ca.crt'))) {
      await initKeys({ out: keys, cluster: 'demo' })
      await issueOperator({ keys, name: 'demo' })
      console.log(`made throwaway keys in ${keys}`)
    }
    const addresses = Array.from({ length: count }, (_, i) => `127.0.0.1:${basePort + i}`)
    const nodes: NodeProcess[] = []
    const stopAll = async (): Promise<void> => { await Promise.all(nodes.map(async (n) => await n.stop())) }
    const onSignal = (): void => { void stopAll().then(() => process.exit(130)) }
    process.once('SIGTERM', onSignal)
    process.once('SIGHUP', onSignal)
    try {
      for (let i = 0; i < count; i++) {
        const data = join(dir, `node-${i + 1}`)
        await mkdir(data, { recursive: true })
        nodes.push(launchNode([
          '--keys', keys, '--cluster', 'demo', '--listen', addresses[i],
          '--seeds', addresses.join(','), '--data', data, '--name', `node-${i + 1}`, '--spec-dir', specDir
        ], { logFile: join(data, 'stderr.log') }))
      }
      console.log(`starting ${count} nodes on ${addresses.join(', ')} (logs: ${join(dir, 'node-*', 'node.log')})`)
      const early = Promise.race(nodes.map(async (n, i) => {
        const code = await n.exited
        throw new OriginError('E_START_FAILED', `node-${i + 1} exited (${code}) while starting; see ${join(dir, `node-${i + 1}`, 'stderr.log')}`)
      }))
      const cluster = await Promise.race([waitForMembers(addresses[0], keys, count, 20_000), early])
      early.catch(() => {}) // nodes exiting later are the REPL's business
      await startSession(cluster, {
        banner: `origin demo: ${count} nodes up, running the spec in ${specDir} (edit it: nodes reload it). Try:\n  await cluster.nodes()\n  await cluster.services()\n  await cluster.spec()\n  open(await cluster.logs('node-1', 'agent'))\nLeave with .exit or Ctrl-D (stops the nodes).`
      })
      cluster.close()
      return 0
    } finally {
      await stopAll()
      console.log('demo nodes stopped')
    }
  }
}
