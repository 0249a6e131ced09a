/**
 * The thread evaluations run on (eval.ts `evaluateApart`): for each transpiled script it is
 * sent, runs it in a fresh vm context and posts the value or the error.
 */
import { parentPort } from 'node:worker_threads'
import { asOriginError } from '../errors'
import { execute, type EvalOptions } from './eval'

parentPort?.on('message', ({ script, view, options }: { script: string, view: string, options: EvalOptions }) => {
  try {
    parentPort?.postMessage({ ok: true, result: execute(script, JSON.parse(view), options) })
  } catch (err) {
    parentPort?.postMessage({ ok: false, error: asOriginError(err).toJSON() })
  }
})
