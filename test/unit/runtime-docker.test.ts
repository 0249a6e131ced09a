import test from 'ava'
import { silentLogger } from '../../node/log'
import type { RunRequest } from '../../node/runtime/contract'
import { connectionOf, containerName, containerOptions, dockerSocket, LABEL_INSTANCE, LABEL_NODE, LABEL_SERVICE } from '../../node/runtime/docker'
import { validateService } from '../../node/desired/schema'

const request = (over: Partial<RunRequest> = {}): RunRequest => ({
  id: 'cache-1',
  program: { kind: 'image', image: 'redis:7', service: 'cache' },
  args: ['--port', '7001'],
  env: { PORT: '7001', ORIGIN_STATE_DIR: '/var/origin/state/cache-1', A: 'b' },
  log: silentLogger,
  output: () => {},
  ...over
})

test('runtime-docker: a container is created on the host network with the engine init, labelled with node, instance and service', (t) => {
  const o = containerOptions('node-a', request(), 1_700_000_000_000)
  t.is(o.Image, 'redis:7')
  t.deepEqual(o.Cmd, ['--port', '7001'])
  t.deepEqual(o.Labels, { [LABEL_NODE]: 'node-a', [LABEL_INSTANCE]: 'cache-1', [LABEL_SERVICE]: 'cache' })
  t.is(o.HostConfig?.NetworkMode, 'host')
  t.is(o.HostConfig?.Init, true)
  t.is(o.HostConfig?.AutoRemove, false, 'origin reads the exit code and OOM flag before it removes the container')
  t.deepEqual(o.Env?.sort(), ['A=b', 'ORIGIN_STATE_DIR=/var/origin/state/cache-1', 'PORT=7001'])
  t.deepEqual(o.HostConfig?.Binds, ['/var/origin/state/cache-1:/var/origin/state/cache-1'], 'the state dir at the same path inside')
  t.is(o.name, 'origin-node-a-cache-1-' + (1_700_000_000_000).toString(36))
})

test('runtime-docker: the memory limit goes to the cgroup with no swap beyond it; none leaves both unset', (t) => {
  const limited = containerOptions('a', request({ memoryLimitMb: 64 }), 0)
  t.is(limited.HostConfig?.Memory, 64 * 1024 * 1024)
  t.is(limited.HostConfig?.MemorySwap, 64 * 1024 * 1024)
  const free = containerOptions('a', request(), 0)
  t.is(free.HostConfig?.Memory, undefined)
  t.is(free.HostConfig?.MemorySwap, undefined)
})

test('runtime-docker: no args keeps the image\'s CMD; a user of its own is the container\'s User; a low port adds only NET_BIND_SERVICE', (t) => {
  const o = containerOptions('a', request({ args: [], user: { uid: 61001, gid: 61001, lowPorts: true } }), 0)
  t.false('Cmd' in o)
  t.is(o.User, '61001:61001')
  t.deepEqual(o.HostConfig?.CapAdd, ['NET_BIND_SERVICE'])
  t.false('User' in containerOptions('a', request(), 0), 'without one, the image\'s user')
  t.false('Binds' in (containerOptions('a', request({ env: {} }), 0).HostConfig ?? {}), 'no state dir, no mount')
})

test('runtime-docker: a command is not the docker runtime\'s to run', (t) => {
  t.throws(() => containerOptions('a', request({ program: { kind: 'command', command: 'node', cwd: '/' } }), 0), { message: /runs images, not command node/ })
})

test('runtime-docker: container names keep to docker\'s characters', (t) => {
  t.regex(containerName('node a/b', 'web:1', 5), /^origin-node_a_b-web_1-5$/)
})

test('runtime-docker: the socket comes from the config, else DOCKER_HOST, else /var/run/docker.sock; addresses become dockerode options', (t) => {
  t.is(dockerSocket('/run/d.sock', { DOCKER_HOST: 'tcp://x:1' }), '/run/d.sock')
  t.is(dockerSocket(undefined, { DOCKER_HOST: 'unix:///tmp/d.sock' }), 'unix:///tmp/d.sock')
  t.is(dockerSocket(undefined, {}), '/var/run/docker.sock')
  t.deepEqual(connectionOf('/var/run/docker.sock'), { socketPath: '/var/run/docker.sock' })
  t.deepEqual(connectionOf('unix:///tmp/d.sock'), { socketPath: '/tmp/d.sock' })
  t.deepEqual(connectionOf('tcp://10.0.0.5:2375'), { host: '10.0.0.5', port: 2375, protocol: 'http' })
  t.deepEqual(connectionOf('tcp://[::1]:2375'), { host: '::1', port: 2375, protocol: 'http' })
  t.throws(() => connectionOf('docker.sock'), { message: /give a socket path, unix:\/\/\/path or tcp:\/\/host:port/ })
})

test('runtime-docker: a service gives exactly one of command and image, and cwd only with a command', (t) => {
  const check = (run: unknown): string[] => { const r = validateService({ run, placement: { kind: 'every' } }); return r.ok ? [] : r.problems.map((p) => `${p.path} ${p.message}`) }
  t.deepEqual(check({ image: 'redis:7', args: ['--port', '$PORT'], env: { A: 'b' } }), [])
  t.deepEqual(check({ image: { build: { dockerfile: 'Dockerfile' } } }), [])
  t.deepEqual(check({ image: { ref: 'app:1', load: 'images/app.tar' } }), [])
  t.deepEqual(check({}), ['/run must give "command" (a host process) or "image" (Docker containers)'])
  t.deepEqual(check({ command: 'node', image: 'redis:7' }), ['/run gives both "command" and "image": give one (a host process or Docker containers)'])
  t.deepEqual(check({ image: 'redis:7', cwd: 'x' }), ['/run/cwd is for commands only: a container works in its image\'s WORKDIR'])
  for (const bad of [{ load: 'a.tar', build: {} }, { load: '../a.tar' }, {}, 'Not An Image']) t.is(check({ image: bad }).length, 1, JSON.stringify(bad))
})

test('runtime-docker: CPU shares and a CPU cap go to the engine; a host process service may not give them', (t) => {
  const o = containerOptions('a', request({ cpu: { shares: 512, cpus: 0.5 } }), 0)
  t.is(o.HostConfig?.CpuShares, 512)
  t.is(o.HostConfig?.NanoCpus, 500_000_000)
  const none = containerOptions('a', request(), 0)
  t.false('CpuShares' in (none.HostConfig ?? {}))
  t.false('NanoCpus' in (none.HostConfig ?? {}))
  const placement = { kind: 'singleton' }
  const image = validateService({ run: { image: 'redis:7' }, placement, resources: { cpuShares: 512, cpus: 1.5 } })
  t.true(image.ok, JSON.stringify(image))
  const proc = validateService({ run: { command: 'redis-server' }, placement, resources: { cpuShares: 512 } })
  t.false(proc.ok)
  if (!proc.ok) t.regex(proc.problems.map((p) => `${p.path}: ${p.message}`).join('\n'), /resources: gives cpuShares or cpus, which apply to container services \(run\.image\) only/)
  const low = validateService({ run: { image: 'redis:7' }, placement, resources: { cpuShares: 1 } })
  t.false(low.ok)
  t.true(validateService({ run: { command: 'redis-server' }, placement, resources: { memoryMb: 64 } }).ok, 'a process keeps its memory limit')
})
