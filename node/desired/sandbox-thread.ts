/**
 * The thread spec code runs on, inside the evaluator process. The evaluator's main thread
 * (sandbox.ts) reads and transpiles files and watches the CPU time this thread's file has
 * used; past the file's limit it terminates the thread, which stops any loop at once, and
 * starts a fresh one for the next file. (Interrupting the main thread instead, with SIGINT
 * and `breakOnSigint`, raced: a signal that came just after a script ended found node's
 * default handler back and killed the evaluator.)
 *
 * An import is resolved synchronously (a `require` cannot wait): this thread asks the main
 * thread, sleeps on a shared flag, and takes the answer from its port when woken.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads'

/** What the main thread answers about one `require(id)`: a TS file comes as its JavaScript. */
export type Resolution =
  | { kind: 'spec' }
  | { kind: 'ts', key: string, js: string }
  | { kind: 'json', key: string, text: string }
  | { kind: 'error', message: string, reported: boolean }

/** What the loader reported for one entry (host.done / host.fail), strings clipped. */
export type Outcome =
  | { ok: true, json: string }
  | { ok: false, message: string, stack: string, loader: boolean, reported: boolean }

export interface ToThread { t: 'run', file: string }

export type FromThread =
  | { t: 'resolve', from: string, id: string }
  | { t: 'enter', key: string }
  | { t: 'leave' }
  | { t: 'ran', outcome?: Outcome, error?: string }

interface ThreadData {
  loader: string
  prefix: string
  defineNames: string
  maxText: number
  answers: MessagePort
  signal: SharedArrayBuffer
}

/**
 * The thread's program. It is started from this function's source text, so it runs the
 * same from the checkout and from an `origin-node` executable (which has no files to start
 * a worker from): it may use only itself, `workerData` and node's builtins.
 */
function threadMain (): void {
  const vm = require('node:vm') as typeof import('node:vm')
  const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads') as typeof import('node:worker_threads')
  const data = workerData as ThreadData
  const flag = new Int32Array(data.signal)
  const post = (m: FromThread): void => { parentPort?.postMessage(m) }
  const clip = (text: unknown, fallback: string): string => typeof text === 'string' ? text.slice(0, data.maxText) : fallback

  function ask (from: string, id: string): Resolution {
    Atomics.store(flag, 0, 0)
    post({ t: 'resolve', from, id })
    Atomics.wait(flag, 0, 0)
    const answer = receiveMessageOnPort(data.answers)
    if (answer === undefined) throw new Error(`no answer about ${id}`)
    return answer.message as Resolution
  }

  parentPort?.on('message', (m: ToThread) => {
    const functions = new Map<string, unknown>()
    let outcome: Outcome | undefined
    const context = vm.createContext(Object.create(null), {
      name: 'origin spec',
      codeGeneration: { strings: false, wasm: false },
      microtaskMode: 'afterEvaluate'
    })
    const boot = new vm.Script(data.loader, { filename: 'origin:loader' }).runInContext(context) as (host: object, names: string) => void
    // Only primitives cross from the context to this realm, and only plain objects made here
    // (which the loader alone sees) cross back.
    boot({
      resolve: (from: string, id: string) => {
        // an Error of this realm must not reach spec code (its constructor is this realm's Function)
        try {
          const r = ask(String(from), String(id))
          if (r.kind !== 'ts') return r
          let fn = functions.get(r.key)
          if (fn === undefined) {
            fn = new vm.Script(`${data.prefix}${r.js}\n})`, { filename: r.key }).runInContext(context)
            functions.set(r.key, fn)
          }
          return { kind: 'ts', key: r.key, fn }
        } catch (err) {
          return { kind: 'error', message: String(err), reported: false }
        }
      },
      enter: (key: string) => { post({ t: 'enter', key: String(key) }) },
      leave: () => { post({ t: 'leave' }) },
      done: (json: unknown) => {
        outcome = typeof json === 'string' ? { ok: true, json } : { ok: false, message: 'exports a value JSON cannot hold', stack: '', loader: true, reported: false }
      },
      fail: (message: unknown, stack: unknown, loader: unknown, reported: unknown) => {
        outcome = { ok: false, message: clip(message, 'threw a value that cannot be described'), stack: clip(stack, ''), loader: loader === true, reported: reported === true }
      }
    }, data.defineNames)
    let error: string | undefined
    try {
      new vm.Script(`__originRun(${JSON.stringify(m.file)})`, { filename: 'origin:run' })
        .runInContext(context)
    } catch (err) {
      error = clip(String(err), 'an error')
    }
    post({ t: 'ran', outcome, error })
  })
}

export interface SandboxThread {
  worker: Worker
  /** Answer the thread's pending `resolve` and wake it. */
  answer: (r: Resolution) => void
}

/** A new spec thread; `loader` is the code that runs first in each file's context; `heapMb` its heap limit. */
export function startSandboxThread (o: { loader: string, prefix: string, defineNames: string, maxText: number, heapMb: number }): SandboxThread {
  const { port1, port2 } = new MessageChannel()
  const signal = new SharedArrayBuffer(4)
  const flag = new Int32Array(signal)
  const { heapMb, ...given } = o
  const data: ThreadData = { ...given, answers: port2, signal }
  const worker = new Worker(`(${threadMain.toString()})()`, {
    eval: true,
    workerData: data,
    transferList: [port2],
    // A heap past its limit ends the thread with ERR_WORKER_OUT_OF_MEMORY, which the
    // evaluator reports as memory (the process's own limit would not apply to it).
    resourceLimits: { maxOldGenerationSizeMb: heapMb },
    // Its stdout is not the evaluator's (that is the protocol's); spec code has no console anyway.
    stdout: true,
    stderr: false
  })
  return {
    worker,
    answer: (r) => {
      port1.postMessage(r)
      Atomics.store(flag, 0, 1)
      Atomics.notify(flag, 0)
    }
  }
}
