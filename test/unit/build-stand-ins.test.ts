/**
 * build/bundle.ts stand-ins: what dockerode requires at its top but origin never uses (ssh2,
 * gRPC, protobuf) is left out of origin-node; dockerode still loads and talks to an engine,
 * and anything that reaches a left-out package fails naming it.
 */
import test from 'ava'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { bundleOne, standIn } from '../../build/bundle'
import { withoutNodeFlags, NODE_OPTIONS } from '../../node/launch'

function load (code: string): unknown {
  const module = { exports: {} as unknown }
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  new Function('module', 'exports', 'require', code)(module, module.exports, require)
  return module.exports
}

test('stand-in: readable at the top of a module, throws naming the package when used', (t) => {
  const ssh2 = load(standIn('ssh2')) as { Client: new () => unknown, __esModule?: unknown }
  const Client = ssh2.Client // docker-modem/lib/ssh.js reads this when it loads
  t.is(ssh2.__esModule, undefined)
  t.throws(() => new Client(), { message: /^ssh2 is not part of origin-node/ })
  const grpc = load(standIn('@grpc/grpc-js')) as { loadPackageDefinition: () => unknown }
  t.throws(() => grpc.loadPackageDefinition(), { message: /^@grpc\/grpc-js is not part of origin-node/ })
})

test('stand-in: dockerode bundled without ssh2, gRPC and protobuf loads and builds its client', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-stand-ins-'))
  try {
    const entry = join(dir, 'entry.js')
    await writeFile(entry, `const Docker = require(${JSON.stringify(require.resolve('dockerode'))}); module.exports = new Docker({ socketPath: '/nonexistent/docker.sock' }).modem.socketPath`)
    const { code } = await bundleOne(entry, { build: {}, imageJson: '{}', secrets: {} } as never)
    // A string from each package's own code (ssh2's protocol, gRPC's server, protobuf's reader).
    for (const left of ['SSH-2.0-ssh2js', 'grpc-accept-encoding', 'invalid wire type']) t.false(code.includes(left), `${left} is not in the bundle`)
    t.is(load(code), '/nonexistent/docker.sock')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('launch: withoutNodeFlags takes the node\'s V8 flags out of NODE_OPTIONS and keeps the rest', (t) => {
  t.deepEqual(withoutNodeFlags({ NODE_OPTIONS, PATH: '/bin' }), { PATH: '/bin' })
  t.deepEqual(withoutNodeFlags({ NODE_OPTIONS: `--enable-source-maps ${NODE_OPTIONS}` }), { NODE_OPTIONS: '--enable-source-maps' })
  t.deepEqual(withoutNodeFlags({ HOME: '/root' }), { HOME: '/root' })
})
