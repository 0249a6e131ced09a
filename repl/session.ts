/**
 * The interactive REPL: TypeScript through ts-node (transpile-only, so it starts fast),
 * top-level await, `cluster`, `ops` and `open` in scope. Errors print as one line with
 * their code and what to do (`.debug` for stacks); `.help` lists everything; Tab completes
 * methods and names; history persists across sessions; Ctrl-C stops a watch or stops
 * waiting; when the node leaves or dies the session goes on with another member.
 * Resolves when the operator leaves (.exit, Ctrl-D).
 */
import repl from 'node:repl'
import { Writable } from 'node:stream'
import { inspect } from 'node:util'
import { createRepl, create } from 'ts-node'
import { errorMessage } from '../node/errors'
import { helpText } from './catalog'
import type { Cluster } from './client'
import { completer, type Completer } from './complete'
import { errorLine, tsErrorLines } from './errors'
import { History, historyPath } from './history'
import { openInEditor } from './open'
import { OpsLoader } from './ops'

export interface SessionOptions {
  input?: NodeJS.ReadableStream
  output?: NodeJS.WritableStream
  /** Printed before the first prompt. */
  banner?: string
  /** Where history persists; false keeps none. @default historyPath(): in the user's config dir */
  historyFile?: string | false
}

type EvalCallback = (err: Error | null, result?: unknown) => void

export async function startSession (cluster: Cluster, o: SessionOptions = {}): Promise<void> {
  const output = o.output ?? process.stdout
  const input = (o.input ?? process.stdin) as NodeJS.ReadStream
  const terminal = (output as NodeJS.WriteStream).isTTY === true
  let debug = false
  let lastError: unknown
  // ts-node prints TypeScript compile errors itself (with its stack): made one line here.
  const tsErrors = new Writable({
    write (chunk: Buffer, _enc, done) {
      const text = chunk.toString()
      output.write(debug ? text : (tsErrorLines(text) ?? text.trimEnd()) + '\n')
      done()
    }
  })
  const replService = createRepl({ stdin: input, stdout: output, stderr: tsErrors })
  const service = create({
    ...replService.evalAwarePartialHost,
    transpileOnly: true,
    compilerOptions: { target: 'es2022', module: 'commonjs', strict: false, esModuleInterop: true }
  })
  replService.setService(service)
  service.compile('', replService.state.path)
  // The session survives its node: another member takes over when it goes away.
  await cluster.link.enableReconnect().catch((err) => output.write(`note: the session cannot follow the cluster if this node goes away: ${errorMessage(err)}\n`))
  const loader = new OpsLoader(cluster)
  await loader.refresh()
  if (loader.problems.length > 0) output.write(`ops helpers: ${loader.problems.join('; ')}\n`)
  let history: History | undefined
  if (o.historyFile !== false) {
    try {
      history = await History.open(o.historyFile ?? historyPath())
    } catch (err) {
      output.write(`note: no history across sessions: ${errorMessage(err)}\n`)
    }
  }
  if (o.banner !== undefined) output.write(o.banner + '\n')

  /** The evaluation waiting for its result, which Ctrl-C can stop waiting for. */
  let pending: { cb: EvalCallback, done: boolean } | undefined
  const interrupts = new Set<() => void>()
  let editing = false
  const printError = (err: unknown): void => {
    lastError = err
    output.write((debug ? inspect(err) : errorLine(err)) + '\n')
  }
  const server = repl.start({
    prompt: `${cluster.node}> `,
    input,
    output,
    terminal,
    ignoreUndefined: true,
    useGlobal: true,
    // The spec's ops/ helpers are reloaded before each evaluation when the spec changed.
    eval: (code, context, file, cb: EvalCallback) => {
      const entry = { cb, done: false }
      pending = entry
      void loader.refresh().then(() => replService.nodeEval(code, context, file, (err: Error | null, value?: unknown) => {
        if (entry.done) return // Ctrl-C: no longer awaited
        entry.done = true
        if (pending === entry) pending = undefined
        if (err !== null && err !== undefined && !(err instanceof repl.Recoverable)) {
          printError(err)
          cb(null)
          return
        }
        cb(err, value)
      }))
    }
  })
  const lines = server as unknown as { history: string[], historySize: number }
  lines.historySize = 1000
  if (history !== undefined && terminal) lines.history.push(...[...history.lines].reverse().slice(0, 1000))
  server.on('line', (line: string) => history?.add(line))

  /** A line for the operator above the prompt, whatever they were doing. */
  const note = (line: string): void => {
    if (pending !== undefined || editing || !terminal) { output.write(`${line}\n`); return }
    output.write(`\r\x1b[K${line}\n`)
    server.displayPrompt(true)
  }
  cluster.attach({
    interactive: terminal,
    get columns () { return (output as NodeJS.WriteStream).columns },
    write: (text) => output.write(text),
    note,
    interrupted: async () => await new Promise<void>((resolve) => interrupts.add(resolve)),
    busy: () => pending !== undefined || editing
  }, { live: true }) // spec applied/rejected and rollout steps, one line each above the prompt
  const link = cluster.link
  link.on('lost', ({ node, address, reason }) => note(`connection to ${node} (${address}) lost: ${reason}; going on with another member…`))
  link.on('reconnected', ({ node, address }) => {
    server.setPrompt(`${node}> `)
    note(`reconnected to ${node} at ${address}; the session is as it was (logs being followed stopped: follow them again)`)
  })
  link.on('unreachable', ({ tried }) => note(`no member of the cluster answers (tried ${tried.join(', ')}); the next command tries again`))

  const terminalHold = {
    release: () => {
      editing = true
      server.pause()
      if (input.isTTY === true) input.setRawMode(false)
    },
    reclaim: () => {
      if (input.isTTY === true) input.setRawMode(true)
      server.resume()
      editing = false
    }
  }
  Object.assign(server.context, { cluster, open: async (path: string) => await openInEditor(path, terminalHold), ops: loader.ops })

  // Ctrl-C: stops a watch, or stops waiting for an evaluation; else what Node's REPL does.
  const nodeSigint = server.listeners('SIGINT') as Array<(...a: unknown[]) => void>
  server.removeAllListeners('SIGINT')
  server.on('SIGINT', () => {
    if (interrupts.size > 0) {
      for (const resolve of [...interrupts]) resolve()
      interrupts.clear()
      return
    }
    if (pending !== undefined && !pending.done) {
      const p = pending
      pending = undefined
      p.done = true
      output.write('\n(stopped waiting; what was asked may still happen on the node)\n')
      p.cb(null)
      return
    }
    for (const listener of nodeSigint) listener.call(server)
  })

  const fallback = server.completer.bind(server) as Completer
  ;(server as unknown as { completer: Completer }).completer = completer({ cluster, ops: loader.ops, fallback })

  server.defineCommand('help', {
    help: 'every cluster.*, ops.* and open, one line each',
    action () {
      output.write(helpText({ connected: `connected to ${cluster.node} at ${cluster.address} as ${cluster.as}`, ops: loader.ops, opsDocs: loader.docs, opsProblems: loader.problems }) + '\n')
      this.displayPrompt()
    }
  })
  server.defineCommand('debug', {
    help: 'show the stack of errors (again to hide them)',
    action () {
      debug = !debug
      output.write(`errors now print ${debug ? 'in full, with their stack' : 'as one line'}\n`)
      if (debug && lastError !== undefined) output.write(inspect(lastError) + '\n')
      this.displayPrompt()
    }
  })

  let leaving = false
  void cluster.closed.then(() => {
    if (leaving) return
    output.write(`\nconnection to ${cluster.node} at ${cluster.address} closed; leaving the REPL${link.closedBecause === undefined ? '' : `: ${link.closedBecause}`}\n`)
    server.close()
  })
  await new Promise<void>((resolve) => server.once('exit', () => { leaving = true; resolve() }))
  await cluster.unfollow()
  await history?.flush()
}
