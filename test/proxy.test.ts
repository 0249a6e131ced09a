import test from 'ava'
import { spawn } from 'node:child_process'
import { chmod, writeFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import { specDirCluster } from './helpers/spec-dir'
import { waitFor } from './helpers/wait'

/** A web replica: GET /incr does INCR k on redis through REDIS_ADDR; /env shows REDIS_ADDR. */
const web = `
const http = require('http'), net = require('net')
const [host, port] = (process.env.REDIS_ADDR || ':0').split(':')
http.createServer((req, res) => {
  if (req.url === '/env') return res.end(JSON.stringify({ REDIS_ADDR: process.env.REDIS_ADDR, REDIS_HOST: process.env.REDIS_HOST, REDIS_PORT: process.env.REDIS_PORT }))
  if (req.url === '/health') return res.end('ok')
  const s = net.connect(Number(port), host, () => s.write('*2\\r\\n$4\\r\\nINCR\\r\\n$1\\r\\nk\\r\\n'))
  let out = ''
  s.on('data', (d) => { out += d; if (out.endsWith('\\r\\n')) { s.end(); res.end(out.trim() + ' from ' + process.env.ORIGIN_INSTANCE) } })
  s.on('error', (e) => { res.statusCode = 502; res.end(String(e)) })
}).listen(Number(process.env.PORT), process.env.ORIGIN_HOST)
process.on('SIGTERM', () => process.exit(0))
`

async function get (url: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 3000 }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

/** A RESP client on one connection: `cmd('PING')` -> the reply line. */
async function redisConn (address: string): Promise<{ cmd (...args: string[]): Promise<string>, socket: net.Socket }> {
  const i = address.lastIndexOf(':')
  const socket = net.connect(Number(address.slice(i + 1)), address.slice(0, i))
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.on('error', () => {})
  let waiting: ((line: string) => void) | undefined
  let failing: ((err: Error) => void) | undefined
  socket.once('close', () => failing?.(new Error('closed')))
  let buf = ''
  socket.on('data', (d: Buffer) => { buf += d.toString(); const nl = buf.indexOf('\r\n'); if (nl >= 0 && waiting !== undefined) { const line = buf.slice(0, nl); buf = buf.slice(nl + 2); const w = waiting; waiting = undefined; w(line) } })
  return {
    socket,
    cmd: async (...args) => await new Promise<string>((resolve, reject) => {
      waiting = resolve
      failing = reject
      socket.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''))
    })
  }
}

const hostOf = (address: string): string => address.slice(0, address.lastIndexOf(':'))

async function freePort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

test.serial('proxy: a web replica reaches redis on another node through REDIS_ADDR, over a published port from every node, and after redis\'s node is killed', async (t) => {
  const s = await specDirCluster(t)
  const image = { specDir: s.dir }
  await s.c.start({ name: 'a', image, labels: { web: 'yes' } })
  await s.c.start({ name: 'b', image, labels: { db: 'yes' } })
  await s.c.start({ name: 'c', image, labels: { db: 'yes' } })
  await s.c.waitForView({ a: 'alive', b: 'alive', c: 'alive' })
  // Instances run as their own users: the files they run must be readable by them.
  await chmod(s.dir, 0o755)
  await writeFile(join(s.dir, 'web.js'), web, { mode: 0o644 })
  const published = await freePort()
  await s.write('services/redis.json', {
    run: { command: 'redis-server', args: ['--port', '$PORT', '--bind', '$ORIGIN_HOST', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'] },
    placement: { kind: 'singleton', labels: { db: 'yes' } },
    health: { tcp: {}, intervalMs: 200 },
    stopGraceMs: 1000
  })
  await s.write('services/web.json', {
    run: { command: 'node', args: [join(s.dir, 'web.js')] },
    placement: { kind: 'every', labels: { web: 'yes' } },
    uses: ['redis'],
    publish: { port: published, on: 'every' },
    health: { http: { path: '/health' }, intervalMs: 200 },
    stopGraceMs: 1000
  })
  const [redis] = await s.waitInstances('a', 'redis', 1)
  const [webOnA] = await s.waitInstances('a', 'web', 1)
  t.is(webOnA.node, 'a')
  t.not(redis.node, 'a')
  const env = JSON.parse((await get(`http://${webOnA.address ?? ''}/env`)).body) as Record<string, string>
  t.regex(env.REDIS_ADDR, /^127\.0\.0\.1:\d+$/)
  t.is(env.REDIS_HOST, '127.0.0.1')
  t.is(`${env.REDIS_HOST}:${env.REDIS_PORT}`, env.REDIS_ADDR)
  t.regex((await get(`http://${webOnA.address ?? ''}/incr`)).body, /^:1 from web@a$/)

  // The published port answers on every node's host and reaches the replica on a.
  for (const n of ['a', 'b', 'c']) {
    const url = `http://${hostOf(s.c.node(n).address)}:${published}/incr`
    const r = await waitFor(async () => { const x = await get(url); return x.status === 200 ? x : undefined }, { what: `the published port on ${n}` })
    t.regex(r.body, /^:\d+ from web@a$/, `published port on ${n}`)
  }

  // Round trips: redis directly vs through a's loopback address (crossing to redis's node over mTLS).
  const rtt = async (address: string): Promise<{ connectMs: number, reconnectMs: number, p50: number, p99: number }> => {
    const t0 = performance.now()
    const r = await redisConn(address)
    t.is(await r.cmd('PING'), '+PONG')
    const connectMs = performance.now() - t0
    const times: number[] = []
    for (let i = 0; i < 300; i++) { const a = performance.now(); await r.cmd('PING'); times.push(performance.now() - a) }
    r.socket.destroy()
    const t1 = performance.now()
    const second = await redisConn(address)
    await second.cmd('PING')
    const reconnectMs = performance.now() - t1
    second.socket.destroy()
    times.sort((x, y) => x - y)
    return { connectMs, reconnectMs, p50: times[150], p99: times[296] }
  }
  const direct = await rtt(redis.address ?? '')
  const proxied = await rtt(env.REDIS_ADDR)
  t.log(`PING round trip: direct p50 ${direct.p50.toFixed(3)} ms p99 ${direct.p99.toFixed(3)} ms (connect+first PING ${direct.connectMs.toFixed(1)} ms, again ${direct.reconnectMs.toFixed(1)} ms); through the proxy across nodes p50 ${proxied.p50.toFixed(3)} ms p99 ${proxied.p99.toFixed(3)} ms (connect+first PING ${proxied.connectMs.toFixed(1)} ms, again ${proxied.reconnectMs.toFixed(1)} ms)`)

  // Only this node's own instances (and the node's user) may connect: another uid is refused.
  const refused = await new Promise<string>((resolve) => {
    const p = spawn('runuser', ['-u', 'nobody', '--', 'redis-cli', '-h', env.REDIS_HOST, '-p', env.REDIS_PORT, 'PING'])
    let out = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.stderr.on('data', (d: Buffer) => { out += d.toString() })
    p.on('close', () => resolve(out))
  })
  t.notRegex(refused, /PONG/, 'a process of another user gets nothing through')
  t.regex(await s.c.node('a').log(), /refused a connection from uid 65534/)

  // A connection held through the proxy while redis's node dies is closed, not left hanging.
  const held = await redisConn(env.REDIS_ADDR)
  t.is(await held.cmd('PING'), '+PONG')
  const heldClosed = new Promise<void>((resolve) => held.socket.once('close', () => resolve()))
  const killedAt = Date.now()
  s.c.node(redis.node).proc.signal('SIGKILL')
  const moved = await s.c.explainFailure(async () => await waitFor(async () => {
    const r = await s.instances('a', 'redis', 'ready')
    return r.length === 1 && r[0].node !== redis.node ? r[0] : undefined
  }, { timeoutMs: 30_000, what: 'redis ready on the other db node' }))
  t.log(`redis moved from ${redis.node} to ${moved.node} in ${Date.now() - killedAt} ms`)
  await waitFor(async () => await Promise.race([heldClosed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 100))]), { what: 'the held connection to be closed' })
  // New connections through the same REDIS_ADDR reach the new instance.
  const after = await waitFor(async () => { const x = await get(`http://${webOnA.address ?? ''}/incr`); return x.status === 200 && x.body.startsWith(':') ? x : undefined }, { what: 'web to reach the moved redis' })
  t.regex(after.body, /^:\d+ from web@a$/)
  const again = JSON.parse((await get(`http://${webOnA.address ?? ''}/env`)).body) as Record<string, string>
  t.is(again.REDIS_ADDR, env.REDIS_ADDR, 'the same address')
})

test.serial('proxy: a published port already taken is reported in words, not a crash', async (t) => {
  const s = await specDirCluster(t)
  const image = { specDir: s.dir }
  await s.c.start({ name: 'a', image })
  await s.c.waitForView({ a: 'alive' })
  await chmod(s.dir, 0o755)
  await writeFile(join(s.dir, 'web.js'), web, { mode: 0o644 })
  // Something outside origin holds the port on a's host.
  const port = await freePort()
  const squatter = net.createServer()
  await new Promise<void>((resolve) => squatter.listen(port, hostOf(s.c.node('a').address), resolve))
  t.teardown(() => { squatter.close() })
  const svc = (extra: Record<string, unknown>) => ({ run: { command: 'node', args: [join(s.dir, 'web.js')] }, placement: { kind: 'every' }, stopGraceMs: 1000, ...extra })
  await s.write('services/web.json', svc({ publish: { port } }))
  // Two services asking for one port: the second is unschedulable, with the reason.
  await s.write('services/web2.json', svc({ publish: { port } }))
  const report = await waitFor(async () => { const r = await s.services('a'); const w2 = r.services.find((x) => x.name === 'web2'); return w2 !== undefined && w2.unschedulable.length > 0 ? w2 : undefined }, { what: 'web2 unschedulable' })
  t.is(report.unschedulable[0].reason, `publishes port ${port}, which is taken: web publishes it`)
  const log = await waitFor(async () => { const l = await s.c.node('a').log(); return l.includes(`cannot publish web on`) ? l : undefined }, { what: 'the node to say the port is taken' })
  t.regex(log, new RegExp(`cannot publish web on [0-9.]+:${port}: the port is already in use on a`))
  // The node goes on: web runs.
  await s.waitInstances('a', 'web', 1)
})

/** Two ports: main answers with the instance and X-Forwarded-For, admin says it is admin; /up is the health check. */
const echo = `
const http = require('http')
const serve = (port, what) => http.createServer((req, res) => {
  if (req.url === '/up') return res.end('ok')
  if (req.url === '/fail') { res.statusCode = 500; return res.end('sick') }
  if (req.url === '/conn') return res.end(process.env.ORIGIN_INSTANCE + ' ' + req.socket.remotePort)
  if (req.url === '/slow') { res.writeHead(200); res.write('slow '); return setTimeout(() => res.end(process.env.ORIGIN_INSTANCE), 1500) }
  if (req.url === '/admin-through' && process.env.ECHO_ADMIN_ADDR) {
    return http.get('http://' + process.env.ECHO_ADMIN_ADDR + '/', (r) => { let b = ''; r.on('data', (d) => { b += d }); r.on('end', () => res.end(b)) }).on('error', (e) => { res.statusCode = 502; res.end(String(e)) })
  }
  res.end(what + ' ' + process.env.ORIGIN_INSTANCE + ' xff=' + (req.headers['x-forwarded-for'] || ''))
}).on('upgrade', (req, socket) => {
  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\nX-Instance: ' + process.env.ORIGIN_INSTANCE + '\\r\\nX-Seen-For: ' + req.headers['x-forwarded-for'] + '\\r\\n\\r\\n')
  socket.pipe(socket)
}).listen(Number(port), process.env.ORIGIN_HOST)
serve(process.env.PORT_MAIN || process.env.PORT, 'main')
if (process.env.PORT_ADMIN) serve(process.env.PORT_ADMIN, 'admin')
process.on('SIGTERM', () => process.exit(0))
`

test.serial('proxy: HTTP mode spreads requests over replicas with X-Forwarded-For, routes one key to one instance from every node, refuses beyond maxInFlight and with none ready in words; a named port is reached with uses "svc:port"', async (t) => {
  const s = await specDirCluster(t)
  const image = { specDir: s.dir }
  await s.c.start({ name: 'a', image })
  await s.c.start({ name: 'b', image })
  await s.c.waitForView({ a: 'alive', b: 'alive' })
  await chmod(s.dir, 0o755)
  await writeFile(join(s.dir, 'echo.js'), echo, { mode: 0o644 })
  const port = await freePort()
  const sickPort = await freePort()
  const run = { command: 'node', args: [join(s.dir, 'echo.js')] }
  await s.write('services/echo.json', {
    run, placement: { kind: 'replicas', count: 2 }, ports: { main: {}, admin: {} },
    publish: { port, http: true }, route: { key: { header: 'X-Project' } }, admission: { maxInFlight: 2 }, health: { http: { path: '/up' }, intervalMs: 200 }, stopGraceMs: 1000
  })
  await s.write('services/sick.json', {
    run, placement: { kind: 'singleton' }, publish: { port: sickPort, http: true },
    health: { http: { path: '/fail' }, intervalMs: 200 }, stopGraceMs: 1000
  })
  await s.write('services/caller.json', { run, placement: { kind: 'every' }, uses: ['echo:admin'], health: { http: { path: '/up' }, intervalMs: 200 }, stopGraceMs: 1000 })
  await s.waitInstances('a', 'echo', 2)
  const seen = new Set<string>()
  await waitFor(async () => {
    for (const n of ['a', 'b']) {
      const r = await get(`http://${hostOf(s.c.node(n).address)}:${port}/`)
      if (r.status !== 200) t.log(r.body)
      t.is(r.status, 200)
      const m = /^main (echo-\d) xff=(.*)$/.exec(r.body)
      t.truthy(m, r.body)
      t.regex(m?.[2] ?? '', /^127\./, 'X-Forwarded-For names the client')
      seen.add(m?.[1] ?? '')
    }
    return seen.size === 2
  }, { what: 'requests to reach both replicas' })
  // Keyed: one key, one instance, from every node.
  const keyed = async (n: string, project: string): Promise<string> => await new Promise((resolve, reject) => {
    http.get(`http://${hostOf(s.c.node(n).address)}:${port}/`, { agent: false, headers: { 'x-project': project } }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve(body.split(' ')[1]))
    }).on('error', reject)
  })
  // Every node computes the same owner once their member tables agree that both are ready
  // (the tables follow by gossip, a moment after what the nodes report).
  const owners = new Set<string>()
  for (const project of ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta']) {
    const onA = await waitFor(async () => {
      const [a1, b1, a2, b2] = [await keyed('a', project), await keyed('b', project), await keyed('a', project), await keyed('b', project)]
      return a1 === b1 && a1 === a2 && a1 === b2 ? a1 : undefined
    }, { what: `${project} to reach one instance from both nodes` })
    owners.add(onA)
  }
  t.is(owners.size, 2, 'keys spread over both instances')
  // Requests one after another from either node reach the instance on one kept-alive
  // connection (its client port stays the same), not a new connection (and TLS stream) each.
  for (const n of ['a', 'b']) {
    const conns = new Set<string>()
    for (let i = 0; i < 5; i++) {
      const body = await new Promise<string>((resolve, reject) => {
        http.get(`http://${hostOf(s.c.node(n).address)}:${port}/conn`, { agent: false, headers: { 'x-project': 'alpha' } }, (res) => {
          let b = ''
          res.on('data', (d: Buffer) => { b += d.toString() })
          res.on('end', () => resolve(b))
        }).on('error', reject)
      })
      conns.add(body)
    }
    t.is(conns.size, 1, `from ${n}: one upstream connection for five requests (${[...conns].join(', ')})`)
  }
  // Admission: with maxInFlight 2, a third request in flight to one instance gets 503 + Retry-After.
  // A slow request resolves `started` once its answer began (it is in flight at the instance), `done` at its end.
  const slow = (n: string): { started: Promise<void>, done: Promise<{ status: number, body: string, retryAfter?: string }> } => {
    let started!: () => void
    const s0 = new Promise<void>((resolve) => { started = resolve })
    const done = new Promise<{ status: number, body: string, retryAfter?: string }>((resolve, reject) => {
      http.get(`http://${hostOf(s.c.node(n).address)}:${port}/slow`, { agent: false, headers: { 'x-project': 'alpha' } }, (res) => {
        started()
        let body = ''
        res.on('data', (d: Buffer) => { body += d.toString() })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] as string | undefined }))
      }).on('error', reject)
    })
    return { started: s0, done }
  }
  // The limit is the instance's, whatever node a request comes in by: one through a, one
  // through b, and the third (through a) is refused.
  const first = [slow('a'), slow('b')]
  await Promise.all(first.map(async (x) => await x.started))
  const third = await slow('a').done
  t.is(third.status, 503)
  t.is(third.retryAfter, '1')
  t.regex(third.body, /^echo is at its limit of 2 requests in flight on echo-\d; come back later/)
  t.deepEqual((await Promise.all(first.map(async (x) => await x.done))).map((x) => x.status), [200, 200])
  // An upgrade (as websockets do; counted in flight while it is open, so after the limit's test) is passed on with X-Forwarded-For, then bytes both ways.
  const upgraded = await new Promise<{ instance: string, seenFor: string, echoed: string }>((resolve, reject) => {
    const req = http.request({ host: hostOf(s.c.node('b').address), port, path: '/ws', agent: false, headers: { connection: 'Upgrade', upgrade: 'echo', 'x-project': 'alpha' } })
    req.on('upgrade', (res, socket) => {
      socket.write('hello through')
      socket.once('data', (d: Buffer) => { socket.destroy(); resolve({ instance: String(res.headers['x-instance']), seenFor: String(res.headers['x-seen-for']), echoed: d.toString() }) })
    })
    req.on('error', reject)
    req.end()
  })
  t.is(upgraded.echoed, 'hello through')
  t.regex(upgraded.seenFor, /^127\./)
  t.is(upgraded.instance, await keyed('b', 'alpha'), 'an upgrade follows the key too')
  const sick = await waitFor(async () => { const r = await get(`http://${hostOf(s.c.node('b').address)}:${sickPort}/`); return r.status === 503 ? r : undefined }, { what: 'a 503 from the sick service' })
  t.is(sick.body.trim(), 'sick has no ready instance right now; try again in a moment')
  // uses "echo:admin": ECHO_ADMIN_ADDR reaches the admin port of a ready echo.
  const [caller] = await s.waitInstances('a', 'caller', 2).then((r) => r.filter((i) => i.node === 'a'))
  const r = await waitFor(async () => { const x = await get(`http://${caller.address ?? ''}/admin-through`); return x.status === 200 ? x : undefined }, { what: 'caller to reach echo admin' })
  t.regex(r.body, /^admin echo-\d xff=$/)
})

test.serial('proxy: with maxKeys 2 an instance holding two keys refuses a third with 503, Retry-After and words, still serves its keys, and the refusal shows in cluster.stats()', async (t) => {
  const s = await specDirCluster(t)
  await s.c.start({ name: 'a', image: { specDir: s.dir } })
  await chmod(s.dir, 0o755)
  await writeFile(join(s.dir, 'echo.js'), echo, { mode: 0o644 })
  const port = await freePort()
  await s.write('services/rooms.json', {
    run: { command: 'node', args: [join(s.dir, 'echo.js')] }, placement: { kind: 'singleton' },
    publish: { port, http: true }, route: { key: { header: 'X-Room' } }, admission: { maxKeys: 2 }, health: { http: { path: '/up' }, intervalMs: 200 }, stopGraceMs: 1000
  })
  await s.waitInstances('a', 'rooms', 1)
  const room = async (key: string): Promise<{ status: number, body: string, retryAfter?: string }> => await new Promise((resolve, reject) => {
    http.get(`http://${hostOf(s.c.node('a').address)}:${port}/`, { agent: false, headers: { 'x-room': key } }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] as string | undefined }))
    }).on('error', reject)
  })
  await waitFor(async () => (await room('red')).status === 200, { what: 'rooms to answer' })
  t.is((await room('blue')).status, 200)
  const third = await room('green')
  t.is(third.status, 503)
  t.is(third.retryAfter, '1')
  t.regex(third.body, /^rooms is at its limit of 2 keys on rooms-\d; come back later/)
  t.is((await room('red')).status, 200, 'a key the instance holds still gets in')
  const client = await s.c.client('a')
  try {
    const stats = await client.stats()
    const a = stats.nodes.find((n) => n.node === 'a')
    t.deepEqual(a?.status === 'ok' ? a.admissionRefusals : undefined, { rooms: 1 })
  } finally { client.close() }
})
