import test from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { PortBook, freePort, portIsFree } from '../../node/supervisor/ports'

async function listening (host: string, port = 0): Promise<net.Server> {
  const s = net.createServer()
  await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(port, host, resolve) })
  return s
}

const portOf = (s: net.Server): number => (s.address() as net.AddressInfo).port

// Programs often listen on every address (`listen(PORT)`), whatever $HOST says: a port held
// on another address fails them with EADDRINUSE, so it is not free for an instance.
test('ports: a port held on another address is not free, though binding at the instance\'s host would work', async (t) => {
  const other = await listening('127.0.0.1')
  t.teardown(() => other.close())
  const port = portOf(other)
  t.false(await portIsFree('127.0.0.2', port))
  other.close()
  await new Promise((resolve) => other.once('close', resolve))
  t.true(await portIsFree('127.0.0.2', port), 'free once nothing holds it')
})

test('ports: an instance does not keep its last port when another address took it meanwhile', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-ports-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const book = new PortBook(join(dir, 'ports.json'))
  const [[, first]] = await book.portsFor('web-0', ['http'], {}, '127.0.0.2') as Array<[string, number]>
  const again = await book.portsFor('web-0', ['http'], {}, '127.0.0.2')
  t.deepEqual(again, [['http', first]], 'kept while free')
  const thief = await listening('127.0.0.1', first)
  t.teardown(() => thief.close())
  const moved = await book.portsFor('web-0', ['http'], {}, '127.0.0.2')
  t.not(moved[0]![1], first)
})

test('ports: a fresh port is free on every address', async (t) => {
  for (let i = 0; i < 20; i++) {
    const port = await freePort('127.0.0.2')
    const s = await listening('::', port).catch(async () => await listening('0.0.0.0', port))
    s.close()
  }
  t.pass()
})
