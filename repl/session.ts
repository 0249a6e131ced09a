/**
 * The interactive REPL: TypeScript through ts-node (transpile-only, so it starts fast),
 * top-level await, `cluster` in scope. Resolves when the operator leaves (.exit, Ctrl-D).
 */
import repl from 'node:repl'
import { createRepl, create } from 'ts-node'
import type { Cluster } from './client'
import { openInEditor } from './open'

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
  const server = repl.start({
    prompt: `${cluster.address}> `,
    input: o.input ?? process.stdin,
    output,
    terminal: (output as NodeJS.WriteStream).isTTY === true,
    eval: replService.nodeEval,
    useGlobal: true
  })
  Object.assign(server.context, { cluster, open: openInEditor })
  let leaving = false
  void cluster.closed.then(() => {
    if (leaving) return
    output.write(`\nconnection to ${cluster.address} closed; leaving the REPL\n`)
    server.close()
  })
  await new Promise<void>((resolve) => server.once('exit', () => { leaving = true; resolve() }))
  await cluster.unfollow()
}
