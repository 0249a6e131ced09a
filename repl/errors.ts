/**
 * How the REPL prints an error: one line with its code and what to do about it
 * (`E_NOT_FOUND: no node "x" in the member table — cluster.nodes() lists the nodes`).
 * `.debug` prints the whole error, stack included, instead.
 */

/** What to do, by error code (origin's, or a JavaScript error's name). */
const HINTS: Record<string, string> = {
  E_ARGS: "check the arguments: cluster.help('<method>') shows each method's signature",
  E_PAYLOAD_INVALID: "check the arguments: cluster.help('<method>') shows each method's signature",
  E_TIMEOUT: 'the node did not answer in time: try again, or see who is alive with cluster.nodes()',
  E_CLOSED: 'the connection closed: the REPL goes on with another member by itself; try again',
  E_UNREACHABLE: 'no answer from there: cluster.nodes() shows which nodes are alive',
  E_NOT_FOUND: 'check the name: cluster.nodes() lists the nodes, cluster.services() the services',
  E_FORBIDDEN_ROLE: 'this needs another certificate role (operator methods take an operator certificate)',
  E_UNKNOWN_METHOD: 'the node may run another version of origin; cluster.help() lists the methods',
  E_INTERNAL: "a bug on the node: its log says more (cluster.logs('<node>', 'node')); .debug shows the stack",
  E_KEY_MISSING: 'check --keys and --as (or ORIGIN_KEYS / ORIGIN_AS)',
  E_FRAME_TOO_LARGE: 'ask for less at once (lines, since)',
  E_SPEC_INVALID: 'fix the files named; origin spec check DIR checks a spec before pushing it',
  ReferenceError: 'cluster, ops and open are in scope; .help lists what they offer',
  TypeError: '.help lists the methods and their arguments'
}

/** `since` is the one argument whose schema error is a pattern nobody can read. */
function specificHint (code: string, message: string): string | undefined {
  if (code === 'E_PAYLOAD_INVALID' && message.includes('/since')) return "since takes '10m', '2h', '1d', a date or an ISO string"
  if (code === 'E_ARGS' && message.startsWith('cannot compile')) return 'check the expression\'s syntax'
  return undefined
}

export function errorCode (err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string' && /^E_[A-Z_]+$/.test(code)) return code
    const name = (err as { name?: unknown }).name
    if (typeof name === 'string' && name !== '' && name !== 'OriginError') return name
  }
  return 'Error'
}

/** One line: `CODE: message — what to do`. */
export function errorLine (err: unknown): string {
  const code = errorCode(err)
  const raw = err instanceof Error ? err.message : typeof err === 'object' && err !== null && 'message' in err ? String((err as { message: unknown }).message) : String(err)
  const message = raw.split('\n').map((l) => l.trim()).filter((l) => l !== '').join('; ')
  const hint = specificHint(code, raw) ?? HINTS[code]
  return `${code}: ${message}${hint === undefined ? '' : ` — ${hint}`}`
}

/**
 * A TypeScript compile error as ts-node prints it (with its stack) -> one line per
 * diagnostic: `TS1109: Expression expected (line 1, column 5) — ...`. Undefined if `text`
 * is not one.
 */
export function tsErrorLines (text: string): string | undefined {
  if (!text.includes('Unable to compile TypeScript')) return undefined
  const lines = [...text.matchAll(/\.ts:(\d+):(\d+) - error (TS\d+): ([^\n]*)/g)]
    .map((m) => `${m[3]}: ${m[4]!.trim()} (line ${m[1]}, column ${m[2]}) — check the syntax; .editor takes several lines`)
  return lines.length === 0 ? undefined : lines.join('\n')
}
