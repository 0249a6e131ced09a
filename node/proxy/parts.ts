/**
 * What the proxy's pieces share (uses.ts, publish.ts, relay.ts, incoming.ts): the layer's
 * init and components, its clock, the book of forwarded connections, the kept-alive
 * upstreams, the admission counts and the way to reach an instance. One of each per node:
 * least-connections and admission must see every connection, whichever piece took it in.
 */
import type { Clock } from '../clock'
import type { Admission } from './admission'
import type { Dialer } from './dial'
import type { Connections } from './forward'
import type { ProxyComponents, ProxyInit } from './types'
import type { Upstreams } from './upstreams'

export interface ProxyParts {
  init: ProxyInit
  c: ProxyComponents
  clock: Clock
  conns: Connections
  upstreams: Upstreams
  admission: Admission
  dial: Dialer
  /** The next turn among equally loaded targets (one counter, so every piece takes turns with the others). */
  nextTurn: () => number
}

/** How long a new connection waits for a ready instance. */
export function waitForReadyMs (init: ProxyInit): number {
  return init.waitForReadyMs ?? 5000
}
