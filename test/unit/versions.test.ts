import test from 'ava'
import fc from 'fast-check'
import { lstat, mkdtemp, readFile, readlink, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../node/log'
import type { ServiceSpec } from '../../node/desired/types'
import { CodeCache } from '../../node/supervisor/code'
import { bindHosts, expandVars, instanceEnvironment, resolveHealth } from '../../node/supervisor/environment'
import { codeDigest, filesUnder, servicePaths, serviceVersion } from '../../node/supervisor/version'

const svc = (o: Partial<ServiceSpec> = {}): ServiceSpec => ({ run: { command: 'node', args: ['server.js'] }, placement: { kind: 'replicas', count: 2 }, ...o })

test('versions: placement is not part of a service\'s version; what reaches the process is', (t) => {
  const base = serviceVersion(svc(), 'code-1')
  t.is(serviceVersion(svc({ placement: { kind: 'replicas', count: 3, labels: { zone: 'b' } } }), 'code-1'), base, 'scaling or relabelling replaces nothing')
  t.not(serviceVersion(svc({ run: { command: 'node', args: ['server.js'], env: { A: '1' } } }), 'code-1'), base)
  t.not(serviceVersion(svc({ health: { tcp: {} } }), 'code-1'), base)
  t.not(serviceVersion(svc(), 'code-2'), base, 'new code is a new version')
})

test('versions: field order in a spec file does not change the version', (t) => {
  t.notThrows(() => fc.assert(fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }).filter((k) => /^[A-Z]/.test(k)), fc.string(), { maxKeys: 6 }), (env) => {
    const reversed = Object.fromEntries(Object.entries(env).reverse())
    return serviceVersion(svc({ run: { command: 'x', env } }), 'c') === serviceVersion(svc({ run: { env: reversed, command: 'x' } }), 'c')
  })))
})

test('versions: a service\'s code is its own folder unless it lists paths', (t) => {
  const files = new Map([['services/web/a.js', Buffer.from('a')], ['services/web2/b.js', Buffer.from('b')], ['lib/x.js', Buffer.from('x')], ['services/web.json', Buffer.from('{}')]])
  t.deepEqual([...filesUnder(servicePaths('web', svc()), files).keys()], ['services/web/a.js'], 'not services/web2/, not the spec file')
  t.deepEqual([...filesUnder(servicePaths('web', svc({ paths: ['lib/', 'services/web'] })), files).keys()].sort(), ['lib/x.js', 'services/web/a.js'])
  const digest = codeDigest(filesUnder(['services/web/'], files), new Map())
  files.set('lib/x.js', Buffer.from('changed'))
  t.is(codeDigest(filesUnder(['services/web/'], files), new Map()), digest, 'another folder changing is not this code changing')
  t.not(codeDigest(filesUnder(['services/web/'], files), new Map([['services/web/a.js', 0o755]])), digest, 'the executable bit is part of the code')
})

test('environment: $NAME and ${NAME} expand to what origin sets and the service declares; other words stay for a shell', (t) => {
  const env = instanceEnvironment({ node: 'n1', service: 'web', instance: 'web-0', spec: 'abc', api: 'http://127.0.0.1:1', apiKey: 'k', ports: [['http', 8080], ['admin', 9090]], listenHost: '10.0.0.5', stateDir: '/s', env: { GREETING: 'hi' } })
  t.is(env.PORT, '8080')
  t.is(env.PORT_ADMIN, '9090')
  t.is(expandVars('--port $PORT --admin=${PORT_ADMIN} --host $ORIGIN_HOST $GREETING $HOME $1 $$ ${NOPE}', env), '--port 8080 --admin=9090 --host 10.0.0.5 hi $HOME $1 $$ ${NOPE}')
  t.is(expandVars('$PORTX', env), '$PORTX', 'a longer name is another name')
})

test('environment: bind decides where the process listens and where it is dialled', (t) => {
  t.deepEqual(bindHosts(undefined, '10.0.0.5'), { listen: '10.0.0.5', dial: '10.0.0.5' })
  t.deepEqual(bindHosts('loopback', '10.0.0.5'), { listen: '127.0.0.1', dial: '127.0.0.1' })
  t.deepEqual(bindHosts('any', '10.0.0.5'), { listen: '0.0.0.0', dial: '10.0.0.5' })
  const h = resolveHealth({ http: { path: '/health/$ORIGIN_INSTANCE' } }, { ORIGIN_INSTANCE: 'web-0' }, 8080, '10.0.0.5')
  t.deepEqual(h?.http, { port: 8080, path: '/health/web-0' })
  t.is(h?.host, '10.0.0.5')
})

test('code: a service\'s tree holds its own files with their modes and links; a link out of the tree is refused', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-code-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const cache = new CodeCache(dir, 'n1', silentLogger)
  const files = new Map([
    ['services/app/run.sh', Buffer.from('#!/bin/sh\necho hi\n')],
    ['services/app/current', Buffer.from('run.sh')],
    ['services/other/x', Buffer.from('x')]
  ])
  const modes = new Map([['services/app/run.sh', 0o755], ['services/app/current', 0o120000]])
  const code = await cache.prepare('app', svc(), { version: 'v1', files, modes })
  t.is((await lstat(join(code.dir, 'services/app/run.sh'))).mode & 0o777, 0o755)
  t.is(await readlink(join(code.dir, 'services/app/current')), 'run.sh')
  t.is(await readFile(join(code.dir, 'services/other/x'), 'utf8').catch(() => 'absent'), 'absent', 'only the service\'s own files')
  const escaping = new Map([...files, ['services/app/evil', Buffer.from('../../../etc/passwd')]])
  await t.throwsAsync(cache.prepare('app', svc(), { version: 'v2', files: escaping, modes: new Map([...modes, ['services/app/evil', 0o120000]]) }), { message: /outside the code tree/ })
  await t.throwsAsync(cache.prepare('app', svc(), { version: 'v3', files, modes }), { message: /outside the code tree; retrying in \d+ s \(attempt 2\)/ }, 'a failed preparation backs off without trying again at once')
})
