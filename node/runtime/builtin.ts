/**
 * The runtimes a node has built in: host processes (process.ts) and Docker containers
 * (engine.ts). The supervisor uses these for any runtime its components do not name.
 */
import type { RuntimeSet } from './contract'
import { ContainerEngine } from './engine'
import { processRuntime } from './process'

export const builtinRuntimes: RuntimeSet = {
  process: (init) => processRuntime(init),
  container: (init) => new ContainerEngine(init)
}
