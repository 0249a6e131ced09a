import test from 'ava'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import net from 'node:net'
import type { Member, MemberTable } from '../../node/membership/types'
import { choose, readyTargets, suspectTargets } from '../../node/proxy/choose'
import { parseUse, useEnv } from '../../node/proxy/names'
import { holderOf, loopbackPeer, peerIn, uidIn } from '../../node/proxy/peercred'
import { publishedPortClashes } from '../../node/scheduler/place'
import { validateService } from '../../node/desired/schema'
import type { ServiceSpec } from '../../node/desired/types'

test('proxy: a use names a service, maybe a port, and the variables it gives', (t) => {
  t.deepEqual(parseUse('redis'), { key: 'redis', service: 'redis', port: undefined, prefix: 'REDIS' })
  t.deepEqual(parseUse('api:admin'), { key: 'api:admin', service: 'api', port: 'admin', prefix: 'API_ADMIN' })
  t.is(parseUse('my-db.v2').prefix, 'MY_DB_V2')
  t.deepEqual(useEnv(parseUse('redis'), '127.0.0.1', 41000), { REDIS_ADDR: '127.0.0.1:41000', REDIS_HOST: '127.0.0.1', REDIS_PORT: '41000' })
})

const member = (id: string, status: Member['status'], instances: Member['instances']): Member => ({
  id, address: `${id}:7400`, incarnation: 1, heartbeat: 1, status, hub: false, instances,
  characteristics: { cpus: 1, memoryMb: 1, arch: 'x64', labels: {}, startedAt: 0 }
})

test('proxy: only ready instances on alive members are targets (not on suspect or dead ones); local first, then fewest connections', (t) => {
  const table: MemberTable = {
    a: member('a', 'alive', { 'web-0': { version: '1', state: 'ready', address: 'a:1' }, 'redis': { version: '1', state: 'starting', address: 'a:2' } }),
    b: member('b', 'alive', { 'web-1': { version: '1', state: 'ready', address: 'b:1' }, 'web@b': { version: '1', state: 'ready', address: 'b:3' } }),
    c: member('c', 'dead', { 'web-2': { version: '1', state: 'ready', address: 'c:1' } }),
    d: member('d', 'suspect', { 'web-3': { version: '1', state: 'ready', address: 'd:1' }, 'webby-0': { version: '1', state: 'ready', address: 'd:2' } })
  }
  t.deepEqual(readyTargets(table, 'web').map((x) => x.instance), ['web-0', 'web-1', 'web@b'])
  t.deepEqual(readyTargets(table, 'redis'), [])
  // The fallback for a request that would be refused at once: ready on a suspect member only.
  t.deepEqual(suspectTargets(table, 'web').map((x) => x.instance), ['web-3'])
  t.deepEqual(suspectTargets(table, 'redis'), [])
  const open: Record<string, number> = { 'web-0': 5, 'web-1': 2, 'web@b': 1 }
  t.is(choose(readyTargets(table, 'web'), 'a', (i) => open[i] ?? 0)?.instance, 'web-0', 'local first, however busy')
  t.is(choose(readyTargets(table, 'web'), 'a', (i) => open[i] ?? 0, false)?.instance, 'web@b', 'fewest connections')
  t.is(choose(readyTargets(table, 'web'), 'z', (i) => open[i] ?? 0)?.instance, 'web@b')
  t.is(choose([], 'a', () => 0), undefined)
  t.deepEqual([0, 1, 2, 3].map((turn) => choose(readyTargets(table, 'web'), 'a', () => 0, false, turn)?.instance), ['web-0', 'web-1', 'web@b', 'web-0'], 'equals take turns')
})

test('proxy: the uid of a loopback client socket is read from /proc/net/tcp', (t) => {
  const text = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:A0F0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
    '   1: 0100007F:C350 0100007F:A0F0 01 00000000:00000000 00:00000000 00000000 61003        0 2 1',
    '   2: 0100007F:A0F0 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1'
  ].join('\n')
  t.is(uidIn(text, 0xC350, 0xA0F0), 61003)
  t.is(uidIn(text, 0xC351, 0xA0F0), undefined)
  t.deepEqual(peerIn(text, 0xC350, 0xA0F0), { uid: 61003, inode: 2 })
})

test('proxy: the process holding a loopback client socket is found by its inode', async (t) => {
  if (!existsSync('/proc/net/tcp')) { t.pass('no procfs here'); return }
  const server = net.createServer(() => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const client = net.connect(port, '127.0.0.1')
  await once(client, 'connect')
  t.teardown(() => { client.destroy(); server.close() })
  const peer = await loopbackPeer(client.localPort ?? 0, port)
  t.is(peer?.uid, process.getuid?.())
  t.is(await holderOf(peer?.inode ?? -1, [process.pid]), process.pid)
  t.is(await holderOf(peer?.inode ?? -1, []), undefined)
})

const svc = (extra: Partial<ServiceSpec>): ServiceSpec => ({ run: { command: 'x' }, placement: { kind: 'every' }, ...extra })

test('proxy: a published port another service holds makes the later one unschedulable, in words', (t) => {
  const clashes = publishedPortClashes({
    api: svc({ ports: { main: {}, admin: { port: 9000 } } }),
    web: svc({ publish: { port: 8080 } }),
    web2: svc({ publish: { port: 8080 } }),
    web3: svc({ publish: { port: 9000 } }),
    ok: svc({ publish: { port: 8081 } })
  })
  t.deepEqual([...clashes], [
    ['web2', 'publishes port 8080, which is taken: web publishes it'],
    ['web3', 'publishes port 9000, which is taken: api pins it as its port admin']
  ])
})

test('proxy: uses and publish are checked by the service schema', (t) => {
  t.true(validateService(svc({ uses: ['redis', 'api:admin'], publish: { port: 8080, on: { zone: 'a' }, target: 'main' } })).ok)
  t.true(validateService(svc({ publish: { port: 8080, on: 'hubs' } })).ok)
  const bad = validateService({ ...svc({}), uses: ['redis:Admin'], publish: { port: 70000, on: 'some' } })
  t.false(bad.ok)
  const messages = bad.ok ? [] : bad.problems.map((p) => `${p.path}: ${p.message}`)
  t.true(messages.some((m) => m.startsWith('/uses/0: must be a service name')), messages.join('\n'))
  t.true(messages.some((m) => m.startsWith('/publish/port')), messages.join('\n'))
  t.true(messages.some((m) => m === '/publish/on: must be "every", "hubs" or { "<label>": "<value>" }'), messages.join('\n'))
})
