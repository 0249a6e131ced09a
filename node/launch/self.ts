/**
 * How this program starts another entry of itself (the spec evaluator, say). From a
 * checkout that is `node [flags] script.js`. Inside an `origin-node` single executable
 * there is no script file and node flags on the command line are not read: the
 * executable itself is run again with ORIGIN_ENTRY naming the entry, and node flags go in
 * NODE_OPTIONS, which a single executable does read.
 */
import { existsSync } from 'node:fs'

/** The variable that selects an entry when the executable runs itself. */
export const ENTRY_VARIABLE = 'ORIGIN_ENTRY'
/**
 * Set by launchNode to its own pid: the node it starts leaves the cluster and exits once
 * that process is gone (node/cli/node.ts), instead of running on as an orphan.
 */
export const PARENT_VARIABLE = 'ORIGIN_PARENT_PID'

/** The entries a single executable can be asked to run besides the node. */
export type Entry = 'spec-evaluator'

let sea: boolean | undefined

/** Whether this process is an `origin-node` single executable (Node's SEA). */
export function isSingleExecutable (): boolean {
  if (sea === undefined) {
    try {
      sea = (require('node:sea') as { isSea: () => boolean }).isSea()
    } catch {
      sea = false // node:sea is missing before Node 20.12: not an executable built by origin
    }
  }
  return sea
}

export interface ChildProgram {
  command: string
  args: string[]
  /** Variables to add to the child's environment. */
  env: Record<string, string>
}

/** The command that runs `entry` (compiled to `script` in a checkout) with node `flags`. */
export function childProgram (entry: Entry, script: string, flags: string[] = []): ChildProgram {
  if (isSingleExecutable()) {
    return { command: process.execPath, args: [], env: { [ENTRY_VARIABLE]: entry, NODE_OPTIONS: flags.join(' ') } }
  }
  return { command: process.execPath, args: [...flags, script], env: {} }
}

/** Whether `entry` can be started: its script exists, or this is the executable that holds it. */
export function childAvailable (script: string): boolean {
  return isSingleExecutable() || existsSync(script)
}
