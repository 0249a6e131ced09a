/**
 * The mesh surface: methods one node calls on another (a `node` certificate). Every
 * node serves all of them; `serve` registers one in its layer's `start()`, and the
 * layer that asks another node calls it through `call` / `stream` on this table.
 *
 *   mesh.join / mesh.gossip  GossipFrame -> GossipFrame     whole tables (join, push-pull)
 *   mesh.ping                Ping -> Ack                    SWIM probe, deltas piggybacked
 *   mesh.ping-req            PingReq -> PingReqAnswer       indirect probe
 *   spec.objects             { commit } -> stream of ObjectPiece[]
 *   spec.sync / spec.announce / spec.status                 the spec layer (node/desired)
 *   state.holdings / state.fetch / state.offer / state.status   the state layer (node/state/wire.ts)
 *   supervisor.report / supervisor.logs / stats.node / journal.read   what control gathers from every node
 *   eval.run / instance.restart / node.drain                an operator's action relayed to its node
 *   proxy.streamPort         -> number                      where the proxy's TLS streams listen
 */
import type { EvalResult } from '../control/eval'
import type { EventsRequest } from '../control/events'
import type { LogItem, LogsRequest } from '../control/logs'
import type { NodeStats } from '../control/stats'
import type { Rejection, SyncResult } from '../desired/contract'
import type { ObjectPiece } from '../desired/transfer'
import type { CommitInfo } from '../git/store'
import type { JournalEvent } from '../journal/types'
import { membershipDefaults } from '../membership/config'
import { gossipPayload, pingPayload, pingReqPayload, type Ack, type GossipFrame, type Ping, type PingReq, type PingReqAnswer } from '../membership/schema'
import type { ArchiveItem } from '../state/archive'
import type { StateStatus } from '../state/types'
import { fetchPayload, holdingsPayload, offerPayload, statusPayload, type FetchRequest, type Holdings, type HoldingsRequest, type OfferRequest, type StatusRequest } from '../state/wire'
import type { InstanceReport } from '../supervisor/types'
import { commitField, evalCode, evalLimit, journalReadPayload, logsPayload, nodeIdField } from './schemas'
import { streamed, unary } from './table'

const words = { type: 'string', maxLength: 128 } as const

/** The mesh's methods. Gossip's schemas here use the default bounds; a node serves them with its own (`ServeOptions.payload`). */
export const mesh = {
  'mesh.join': unary<GossipFrame, GossipFrame>('node', gossipPayload(membershipDefaults.maxMembers)),
  'mesh.gossip': unary<GossipFrame, GossipFrame>('node', gossipPayload(membershipDefaults.maxMembers)),
  'mesh.ping': unary<Ping, Ack>('node', pingPayload(membershipDefaults.maxDeltasPerMessage)),
  'mesh.ping-req': unary<PingReq, PingReqAnswer>('node', pingReqPayload(membershipDefaults.maxDeltasPerMessage)),

  'spec.objects': streamed<{ commit: string }, ObjectPiece[]>('node', { type: 'object', additionalProperties: false, required: ['commit'], properties: { commit: commitField } }),
  /** Fetch the spec repo now (a hub does it). */
  'spec.sync': unary<undefined, SyncResult[]>('node'),
  /** A hub applied `commit`: take it from `from` if it is news. */
  'spec.announce': unary<{ commit: string, from: string }, void>('node', { type: 'object', additionalProperties: false, required: ['commit', 'from'], properties: { commit: commitField, from: nodeIdField } }),
  'spec.status': unary<undefined, { applied?: CommitInfo, rejected?: Rejection }>('node'),

  'state.holdings': unary<HoldingsRequest, Holdings>('node', holdingsPayload),
  'state.fetch': streamed<FetchRequest, ArchiveItem>('node', fetchPayload),
  'state.offer': unary<OfferRequest, { stored: boolean, reason: string }>('node', offerPayload),
  'state.status': unary<StatusRequest, StateStatus[]>('node', statusPayload),

  'supervisor.report': unary<undefined, InstanceReport[]>('node'),
  'supervisor.logs': streamed<LogsRequest, LogItem>('node', logsPayload),
  'stats.node': unary<undefined, NodeStats>('node'),
  'journal.read': unary<EventsRequest, JournalEvent[]>('node', journalReadPayload),

  'eval.run': unary<{ operator: string, code: string, timeoutMs?: number }, EvalResult>('node', { type: 'object', additionalProperties: false, required: ['operator', 'code'], properties: { operator: words, code: evalCode, timeoutMs: evalLimit } }),
  'instance.restart': unary<{ instance: string, operator: string }, { instance: string, node: string, ms: number }>('node', { type: 'object', additionalProperties: false, required: ['instance', 'operator'], properties: { instance: words, operator: words } }),
  'node.drain': unary<{ drained: boolean, operator: string }, { node: string, drained: boolean }>('node', { type: 'object', additionalProperties: false, required: ['drained', 'operator'], properties: { drained: { type: 'boolean' }, operator: words } }),

  'proxy.streamPort': unary<undefined, number>('node')
}

export type Mesh = typeof mesh
