/**
 * The interactive REPL: TypeScript through ts-node (transpile-only, so it starts fast),
 * top-level await, `cluster` in scope. Resolves when the operator leaves (.exit, Ctrl-D).
 */
import repl from 'node:repl'
import { createRepl, create } from 'ts-node'
import type { Cluster } from './client'
import { openInEditor } from './open'
import { OpsLoader } from './ops'

export interface SessionOptions {
  input?: NodeJS.ReadableStream
  output?: NodeJS.WritableStream
  /** Printed before the first prompt. */
  banner?: string
}

export async function startSession (cluster: Cluster, o: SessionOptions = {}): Promise<void> {
  const output = o.output ?? process.stdout
  const replService = createRepl({ stdin: o.input, stdout: output })
  const service = create({
    ...replService.evalAwarePartialHost,
    transpileOnly: true,
    compilerOptions: { target: 'es2022', module: 'commonjs', strict: false, esModuleInterop: true }
  })
  replService.setService(service)
  service.compile('', replService.state.path)
  if (o.banner !== undefined) output.write(o.banner + '\n')
  const loader = new OpsLoader(cluster)
  await loader.refresh()
  if (loader.problems.length > 0) output.write(`ops helpers: ${loader.problems.join('; ')}\n`)
  const server = repl.start({
    prompt: `${cluster.address}> `,
    input: o.input ?? process.stdin,
    output,
    terminal: (output as NodeJS.WriteStream).isTTY === true,
    // The spec's ops/ helpers are reloaded before each evaluation when the spec changed.
    eval: (code, context, file, cb) => { void loader.refresh().then(() => replService.nodeEval(code, context, file, cb)) },
    useGlobal: true
  })
  Object.assign(server.context, { cluster, open: openInEditor, ops: loader.ops })
  let leaving = false
  void cluster.closed.then(() => {
    if (leaving) return
    output.write(`\nconnection to ${cluster.address} closed; leaving the REPL\n`)
    server.close()
  })
  await new Promise<void>((resolve) => server.once('exit', () => { leaving = true; resolve() }))
  await cluster.unfollow()
}
