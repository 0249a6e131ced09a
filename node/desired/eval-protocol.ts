/**
 * The line protocol between the node (evaluator.ts) and the evaluator process
 * (evaluator-child.ts): one JSON object a line, on the evaluator's stdin and stdout.
 *
 *   evaluator: ready                      (TypeScript loaded; the node now sets its limits)
 *   node:      start { paths }            (every path of the spec version; contents on request)
 *   node:      eval { file, timeoutMs }   (one entry at a time; the node knows which one runs;
 *                                         timeoutMs is CPU time, which the evaluator keeps)
 *   evaluator: read { path }              (an import, or the entry itself; answered at once)
 *   node:      file { path, text } | file { path, refused }
 *   evaluator: result { file, ok, json | errors }
 *
 * The node trusts nothing it reads here: every line is size-limited, parsed as text and
 * checked before use.
 */
import type { SpecError } from './types'

export type ToEvaluator =
  | { t: 'start', paths: string[] }
  | { t: 'eval', file: string, timeoutMs: number }
  | { t: 'file', path: string, text: string }
  | { t: 'file', path: string, refused: string }

export type FromEvaluator =
  | { t: 'ready' }
  | { t: 'read', path: string }
  | { t: 'result', file: string, ok: true, json: string }
  | { t: 'result', file: string, ok: false, errors: SpecError[] }
