/**
 * state: the directory each instance keeps across restarts, versions and node restarts
 * (`ORIGIN_STATE_DIR`), and what happens to it when the instance moves, as the service's
 * `state` says: `local` (stays on the node), `migrate` (copied over the mesh to the new node
 * on a graceful move) or `replicate` (snapshotted every `intervalMs` to `copies` other
 * nodes; a failover restores the freshest snapshot).
 *
 * Every directory has a generation, raised each time an instance starts on a node with
 * state that node did not already hold. The supervisor publishes the generation each
 * instance runs with (`g` in the member table); this layer remembers the highest one other
 * members published, and asks the reachable members what they hold before an instance
 * starts. A directory older than what the cluster has seen is never used silently: it is
 * moved aside (never deleted) and the note says where, or it is used only when nothing
 * fresher is reachable, and the note says that too.
 *
 * @example
 *   const st = state({ dataDir })({ transport, membership, log })
 *   await st.start()
 *   const p = await st.prepare('redis-0', svc.state)   // before the instance starts here
 *   // p.dir -> ORIGIN_STATE_DIR, p.generation -> `g` in the member table, p.note -> log and REPL
 *   st.attach('redis-0', svc.state, { cwd, env })       // once it runs: snapshots for `replicate`
 *   await st.detach('redis-0', { graceful: true })      // once it stopped: a last snapshot
 */
import { StateNode } from './layer'
import { stateDefaults, type StateComponents, type StateInit, type StateLayer } from './types'

export type { StateInit, StateComponents, StateLayer, PreparedState, StateStatus, CopyResult } from './types'
export { stateDefaults, replicateDefaults } from './types'
export type { HookEnv } from './hook'
export type { Decision, DecisionInput, Source } from './decide'
export { decide, formatAge } from './decide'
export { copyHolders } from './holders'
export { safeName } from './paths'

export function state (init: StateInit) {
  return (c: StateComponents): StateLayer => new StateNode({ ...stateDefaults, ...init }, c)
}
