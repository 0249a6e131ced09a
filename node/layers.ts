/**
 * Which implementation makes each layer by default, and what each built-in needs from the
 * node: the same `dependencies` a plugin declares (node/plugins.ts), so assembly checks a
 * built-in and a replacement alike, and a layer that gains a required component fails `tsc`
 * here until its list says so.
 */
import { control } from './control'
import type { ControlComponents } from './control/types'
import { discovery } from './discovery'
import type { DiscoveryComponents } from './discovery/types'
import { hubs } from './hubs'
import type { HubsComponents } from './hubs/types'
import { builtinRuntimes } from './runtime/builtin'
import type { RuntimeSet } from './runtime/contract'
import { schedule } from './scheduler'
import type { Logger } from './log'
import { membership, type LeaseComponents, type LeaseFactory, type MembershipComponents } from './membership'
import type { LayerName } from './plugins'
import { webSocketTransport, type TransportComponents } from './transport'
import { spec as desired } from './desired'
import type { SpecComponents } from './desired/contract'
import { localApi } from './api'
import type { ApiComponents } from './api/types'
import { proxy } from './proxy'
import type { ProxyComponents } from './proxy/types'
import { journal } from './journal'
import type { JournalComponents } from './journal/types'
import { state } from './state'
import type { StateComponents } from './state/types'
import { supervisor } from './supervisor'
import type { SupervisorComponents } from './supervisor/types'
import { health } from './health'
import type { HealthComponents } from './health/types'

/** The scheduler layer: the pure function every node places services with (node/scheduler). */
export interface SchedulerLayer { schedule: typeof schedule }

/** What the scheduler and runtime layers are given. */
export interface PlainComponents { log: Logger }

/** Each layer's factory: `(init) => (components) => layer`. */
export interface Layers {
  transport: typeof webSocketTransport
  discovery: typeof discovery
  /** The `lease` downing strategy's engine; no default. */
  lease?: LeaseFactory
  membership: typeof membership
  hubs: typeof hubs
  desired: typeof desired
  scheduler: (init: Record<string, unknown>) => (c: PlainComponents) => SchedulerLayer
  /** How instances run, by name (`process`, `container`): the supervisor makes each with what only it knows. One left out is the built-in. */
  runtime: (init: Record<string, unknown>) => (c: PlainComponents) => Partial<RuntimeSet>
  api: typeof localApi
  state: typeof state
  proxy: typeof proxy
  supervisor: typeof supervisor
  journal: typeof journal
  health: typeof health
  control: typeof control
}

export const builtInLayers: Layers = {
  transport: webSocketTransport,
  discovery,
  membership,
  hubs,
  desired,
  scheduler: () => () => ({ schedule }),
  runtime: () => () => builtinRuntimes,
  api: localApi,
  state,
  proxy,
  supervisor,
  journal,
  health,
  control
}

/** The keys of `T` a value must be given for. */
type RequiredKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? never : K }[keyof T] & string

/** Exactly the required components of `T`: a missing or extra name fails to compile. */
function needs<T> () {
  return <const L extends ReadonlyArray<RequiredKeys<T>>>(list: L & (RequiredKeys<T> extends L[number] ? unknown : { missing: Exclude<RequiredKeys<T>, L[number]> })): readonly string[] => list
}

/** The components each built-in layer cannot work without. */
export const builtInDependencies: Record<LayerName, readonly string[]> = {
  transport: needs<TransportComponents>()(['identity', 'log']),
  discovery: needs<DiscoveryComponents>()(['log', 'dataDir', 'nodeId', 'listenPort']),
  lease: needs<LeaseComponents>()(['log']),
  membership: needs<MembershipComponents>()(['transport', 'log', 'self']),
  hubs: needs<HubsComponents>()(['membership', 'log']),
  desired: needs<SpecComponents>()(['transport', 'membership', 'hubs', 'log', 'cluster']),
  scheduler: needs<PlainComponents>()(['log']),
  runtime: needs<PlainComponents>()(['log']),
  api: needs<ApiComponents>()(['membership', 'hubs', 'log']),
  state: needs<StateComponents>()(['transport', 'membership', 'log']),
  proxy: needs<ProxyComponents>()(['identity', 'transport', 'membership', 'hubs', 'spec', 'local', 'log']),
  supervisor: needs<SupervisorComponents>()(['spec', 'membership', 'hubs', 'api', 'state', 'log']),
  journal: needs<JournalComponents>()(['membership', 'hubs', 'spec', 'supervisor', 'log']),
  health: needs<HealthComponents>()(['membership', 'supervisor', 'log', 'dataDir']),
  control: needs<ControlComponents>()(['transport', 'membership', 'hubs', 'spec', 'supervisor', 'dataDir', 'log'])
}
