/**
 * The container engine's retries run on the node's clock: against a socket that is not a
 * Docker engine (it takes each connection and closes it), a failed connection and a
 * failed image are tried again only once virtual time has passed their wait.
 */
import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { VirtualClock } from '../../node/clock/virtual'
import { silentLogger } from '../../node/log'
import { ContainerEngine } from '../../node/runtime/engine'
import { prepareBackoff } from '../../node/supervisor/code'

async function notAnEngine (t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ socket: string, dataDir: string, connections: () => number }> {
  const dataDir = await mkdtemp(join(os.tmpdir(), 'origin-engine-clock-'))
  const socket = join(dataDir, 'docker.sock')
  let connections = 0
  const server = net.createServer((s) => { connections++; s.destroy() })
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  t.teardown(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await rm(dataDir, { recursive: true, force: true })
  })
  return { socket, dataDir, connections: () => connections }
}

test('runtime engine: a failed connection is tried again once retryMs has passed on the node\'s clock, not before', async (t) => {
  const e = await notAnEngine(t)
  const clock = new VirtualClock()
  const engine = new ContainerEngine({ socket: e.socket, dataDir: e.dataDir, nodeId: 'n1', log: silentLogger, retryMs: 600_000, clock })
  const t0 = clock.now()
  const first = await engine.connect()
  t.regex('reason' in first ? first.reason : '', /no Docker engine reachable at/)
  const tried = e.connections()
  t.true(tried > 0)
  t.is(engine.nextRetry(), t0 + 600_000, 'the retry time is on the clock')
  await clock.runUntil(t0 + 599_999)
  await engine.connect()
  t.is(e.connections(), tried, 'the failure is kept until retryMs has passed')
  await clock.runUntil(t0 + 600_000)
  await engine.connect()
  t.true(e.connections() > tried, 'tried again at retryMs')
})

test('runtime engine: a failed image waits its backoff on the node\'s clock before it is made again', async (t) => {
  const e = await notAnEngine(t)
  const clock = new VirtualClock()
  // retryMs 0: every image attempt connects, so a connection counts an attempt.
  const engine = new ContainerEngine({ socket: e.socket, dataDir: e.dataDir, nodeId: 'n1', log: silentLogger, retryMs: 0, clock })
  const t0 = clock.now()
  await t.throwsAsync(engine.image('web', 'nginx:1', e.dataDir, 'v1'), { message: /no Docker engine reachable/ })
  const tried = e.connections()
  await clock.runUntil(t0 + prepareBackoff.firstMs - 1)
  await t.throwsAsync(engine.image('web', 'nginx:1', e.dataDir, 'v1'), { message: /retrying in 1 s \(attempt 2\)/ })
  t.is(e.connections(), tried, 'not made again during its backoff')
  await clock.runUntil(t0 + prepareBackoff.firstMs)
  await t.throwsAsync(engine.image('web', 'nginx:1', e.dataDir, 'v1'), { message: /no Docker engine reachable/ })
  t.true(e.connections() > tried, 'made again once the backoff has passed on the clock')
})
