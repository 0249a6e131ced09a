/**
 * protocol: the methods of each surface, in one table per surface, and the typed way to
 * serve and call them. A layer registers its handlers in `start()` with `serve`; a client
 * (another node, the REPL) calls with `call` / `stream` on the same table.
 *
 * @example
 *   serve(transport, operator, 'cluster.ping', () => ({ node: id, at: Date.now() }))
 *   const { node } = await call(conn, operator, 'cluster.ping')
 */
export { call, serve, stream, streamed, unary, type Entry, type Handler, type PayloadOf, type ResultOf, type ServeOptions, type Table } from './table'
export { mesh, type Mesh } from './mesh'
export { operator, type Operator } from './operator'
export { apiPath, localApiRoutes, routeMatcher, type LocalApiRoutes, type MemberView, type SelfView } from './local-api'
export { problemsOf, specRejectedError, type RejectionData } from './errors'
