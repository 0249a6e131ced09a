// REPL helpers: each exported function is available in the operator's REPL and reloaded
// when the spec repo changes. The spec loader lists this file; it does not run it.

interface NodeView { id: string, status: string }
interface ClusterView { nodes (): Promise<NodeView[]> }

/** How many members are alive right now. */
export async function aliveCount (cluster: ClusterView): Promise<number> {
  return (await cluster.nodes()).filter((n) => n.status === 'alive').length
}
