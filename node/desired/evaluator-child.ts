/**
 * The evaluator process: started by evaluator.ts for one commit's TS spec files, killed
 * when it is done or past a limit. A plain synchronous program: it reads one request line
 * on stdin, answers on stdout, and while a spec file runs it asks the node for the files
 * that file imports, blocking until the answer comes (a `require` cannot wait).
 *
 * Nothing here is trusted by the node; this process only keeps spec code away from the
 * node's memory, event loop and realm.
 */
import { readSync, writeSync } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import type { FromEvaluator, ToEvaluator } from './eval-protocol'
import { typescript } from '../typescript'
import { SpecSandbox } from './sandbox'

const IN = 0
const OUT = 1

let pending = ''
const chunk = Buffer.alloc(64 * 1024)
const decoder = new StringDecoder('utf8') // a character may be split across reads

/** The next request line from the node; the node closing stdin ends this process. */
function receive (): ToEvaluator {
  for (;;) {
    const nl = pending.indexOf('\n')
    if (nl >= 0) {
      const line = pending.slice(0, nl)
      pending = pending.slice(nl + 1)
      return JSON.parse(line) as ToEvaluator
    }
    let n: number
    try {
      n = readSync(IN, chunk)
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') continue
      throw err
    }
    if (n === 0) process.exit(0)
    pending += decoder.write(chunk.subarray(0, n))
  }
}

function send (message: FromEvaluator): void {
  let data = Buffer.from(JSON.stringify(message) + '\n')
  while (data.length > 0) {
    try {
      data = data.subarray(writeSync(OUT, data))
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') throw err
    }
  }
}

async function main (): Promise<void> {
  typescript() // loaded before 'ready', so the node measures the baseline with it
  let paths = new Set<string>()
  const sandbox = new SpecSandbox({
    has: (path) => paths.has(path),
    read: (path) => {
      send({ t: 'read', path })
      const answer = receive()
      if (answer.t !== 'file' || answer.path !== path) throw new Error(`expected the file ${path}, got ${answer.t}`)
      return 'text' in answer ? { ok: true, text: answer.text } : { ok: false, message: answer.refused }
    }
  })
  await sandbox.prepare() // the thread too is started before 'ready'
  send({ t: 'ready' })
  const start = receive()
  if (start.t !== 'start') throw new Error(`expected start, got ${start.t}`)
  paths = new Set(start.paths)
  for (;;) {
    const request = receive()
    if (request.t !== 'eval') throw new Error(`expected eval, got ${request.t}`)
    const result = await sandbox.evaluate(request.file, request.timeoutMs)
    send(result.ok ? { t: 'result', file: request.file, ok: true, json: result.json } : { t: 'result', file: request.file, ok: false, errors: result.errors })
  }
}

main().catch((err) => {
  // The node reads stderr: a heap the spec thread filled is named as memory, anything else as it is.
  const oom = (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY'
  process.stderr.write(oom ? 'the spec thread reached its heap limit\n' : `${String((err as Error).stack ?? err)}\n`)
  process.exit(1)
})
