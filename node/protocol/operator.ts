/**
 * The operator surface: what the REPL (an `operator` certificate) calls on any node.
 * node/control serves these; repl/client.ts calls them. Results are plain data the REPL
 * renders (and `origin repl -e` prints as JSON).
 *
 *   cluster.nodes  -> NodeRow[]     cluster.hubs -> HubsView     cluster.ping -> { node, at }
 *   cluster.spec   -> SpecView      cluster.sync -> SyncResult[]
 *   cluster.services / cluster.where { service } -> ServicesView
 *   cluster.logs   LogsRequest -> stream of LogItem
 *   cluster.stats  -> StatsView     cluster.events -> EventsView   cluster.replay { at } -> ReplayView
 *   cluster.ops    -> { version, files }   cluster.forget { node } -> { forgotten }
 *   cluster.eval / cluster.each / cluster.restart / cluster.drain   actions (node/control/actions.ts)
 */
import type { EachResult, RestartResult } from '../control/actions'
import type { EvalResult } from '../control/eval'
import type { EventsRequest, EventsView, ReplayView } from '../control/events'
import type { LogItem, LogsRequest } from '../control/logs'
import type { ServicesView } from '../control/services'
import type { StatsView } from '../control/stats'
import type { HubsView, NodeRow, SpecView } from '../control/types'
import type { SyncResult } from '../desired/state'
import { evalCode, evalLimit, eventsPayload, logsPayload, nodeIdField, replayPayload } from './schemas'
import { streamed, unary } from './table'

const serviceField = { type: 'string', maxLength: 63 } as const

export const operator = {
  'cluster.nodes': unary<undefined, NodeRow[]>('operator'),
  'cluster.hubs': unary<undefined, HubsView>('operator'),
  'cluster.ping': unary<undefined, { node: string, at: number }>('operator'),
  'cluster.spec': unary<undefined, SpecView>('operator'),
  'cluster.sync': unary<undefined, SyncResult[]>('operator'),
  'cluster.services': unary<undefined, ServicesView>('operator'),
  'cluster.where': unary<{ service: string }, ServicesView>('operator', { type: 'object', additionalProperties: false, required: ['service'], properties: { service: serviceField } }),
  'cluster.logs': streamed<LogsRequest, LogItem>('operator', logsPayload),
  'cluster.ops': unary<undefined, { version: string, files: Record<string, string> }>('operator'),
  'cluster.forget': unary<{ node: string }, { forgotten: string }>('operator', { type: 'object', additionalProperties: false, required: ['node'], properties: { node: nodeIdField } }),
  'cluster.stats': unary<undefined, StatsView>('operator'),
  'cluster.events': unary<EventsRequest, EventsView>('operator', eventsPayload),
  'cluster.replay': unary<{ at: number }, ReplayView>('operator', replayPayload),
  'cluster.eval': unary<{ node: string, code: string, timeoutMs?: number }, EvalResult>('operator', { type: 'object', additionalProperties: false, required: ['node', 'code'], properties: { node: nodeIdField, code: evalCode, timeoutMs: evalLimit } }),
  'cluster.each': unary<{ code: string, timeoutMs?: number }, EachResult[]>('operator', { type: 'object', additionalProperties: false, required: ['code'], properties: { code: evalCode, timeoutMs: evalLimit } }),
  'cluster.restart': unary<{ target: string }, RestartResult>('operator', { type: 'object', additionalProperties: false, required: ['target'], properties: { target: { type: 'string', maxLength: 128 } } }),
  'cluster.drain': unary<{ node: string, drained: boolean }, { node: string, drained: boolean }>('operator', { type: 'object', additionalProperties: false, required: ['node', 'drained'], properties: { node: nodeIdField, drained: { type: 'boolean' } } })
}

export type Operator = typeof operator
