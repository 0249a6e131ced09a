/**
 * The one place that wires a node: every layer is chosen here (transport, discovery, lease,
 * membership, hubs, desired, scheduler, runtime, api, state, proxy, supervisor, journal,
 * health, control), made by `make()` from its factory, and handed to the system, which
 * starts them in that order (the journal early, to hear the others) and stops them in
 * reverse (membership's stop is the graceful leave). A layer is replaced by a factory of the
 * same shape in `layers` (tests, embedders) or by a plugin image.json's `layers` names
 * (node/plugins.ts loads it before anything is made); either way a dependency it lacks
 * fails here, naming the layer: a plugin says what it needs in its `dependencies`, a built-in
 * in node/layers.ts, which is checked against its components type.
 */
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { ImageConfig } from './config/image'
import { resolveConfig, type NodeConfig } from './config'
import type { Hubs } from './hubs'
import { loadNodeId, measureCharacteristics } from './self'
import { dockerSocket } from './runtime/docker'
import { probeRuntimes } from './runtime/probe'
import { loadIdentity } from './keys/files'
import { createLogger, stderrSink, type LogSink, type Logger } from './log'
import { RotatingLog } from './logfile'
import { LeaseHolder, type Characteristics, type Membership } from './membership'
import { assemble, fetchSpecPlugins, LAYER_SHAPE, loadLayerPlugins, type LayerName, type LoadedPlugin } from './plugins'
import { System } from './system'
import type { Transport } from './transport'
import type { SpecLayer } from './desired'
import type { Journal } from './journal'
import type { Supervisor } from './supervisor'
import { listSecrets } from './supervisor/secrets'
import { probeContainment, type Containment } from './supervisor/contain'
import { isoTime, systemClock, type Clock } from './clock'
import { builtInDependencies, builtInLayers, type Layers } from './layers'
import { layerInits, portOf } from './layer-inits'

export interface NodeOptions {
  config: ImageConfig
  /** Directory holding ca.crt, node.crt, node.key. */
  keys: string
  /** Layer factories to use instead of the defaults and of image.json's plugins (tests, embedders). */
  layers?: Partial<Layers>
  /**
   * The time every layer reads and sets its timers on, given to each as its `clock`
   * component: a VirtualClock (node/clock/virtual.ts) runs a cluster in one process faster
   * than real time. @default the system clock
   */
  clock?: Clock
}

export { builtInLayers, builtInDependencies, type Layers, type SchedulerLayer } from './layers'

export interface RunningNode {
  id: string
  address: string
  log: Logger
  transport: Transport
  membership: Membership
  hubs: Hubs
  spec: SpecLayer
  supervisor: Supervisor
  journal: Journal
  stop (): Promise<void>
}

export async function startNode (given: NodeOptions): Promise<RunningNode> {
  // Every default filled in once, here: the layers below read no fallbacks of their own.
  const opts: Resolved = { ...given, config: resolveConfig(given.config, 'node config') }
  const { config } = opts
  const dataDir = resolve(config.data)
  await mkdir(dataDir, { recursive: true })
  const id = await loadNodeId(dataDir, config.name)
  // The node's own log is a file too, rotated like instance logs.
  const nodeLog = new RotatingLog({ path: join(dataDir, 'node.log'), maxBytes: config.log.maxBytes, keep: config.log.keep })
  const root = createLogger(id, { level: config.log.level, sinks: [stderrSink, fileSink(nodeLog)], now: () => clockOf(opts).now() })
  try {
    return await wire(opts, id, dataDir, root, async () => await nodeLog.close())
  } catch (err) {
    await nodeLog.close()
    throw err
  }
}

type Resolved = NodeOptions & { config: NodeConfig }

function clockOf (opts: NodeOptions): Clock { return opts.clock ?? systemClock }

type Maker = <C extends object, T>(layer: LayerName, components: C, build: (c: C) => T) => T

/**
 * Which factory makes each layer: one given in code, else image.json's plugin (spec:<name>
 * ones fetched from the spec repo first), else the built-in; and `make`, which builds one
 * with the checks its choice calls for.
 */
async function chooseLayers (opts: Resolved, dataDir: string, log: Logger, nodeId: string): Promise<{ layers: Layers, make: Maker }> {
  const fetched = await fetchSpecPlugins(opts.config.layers, opts.config.spec, dataDir, { log, nodeId })
  const plugins: Partial<Record<LayerName, LoadedPlugin>> = loadLayerPlugins(fetched)
  const fromImage = Object.fromEntries(Object.entries(plugins).map(([layer, p]) => [layer, p.factory]))
  const layers: Layers = { ...builtInLayers, ...fromImage, ...opts.layers }
  const make: Maker = (layer, components, build) => {
    const inCode = opts.layers?.[layer as keyof Layers] !== undefined
    const plugin = inCode ? undefined : plugins[layer]
    const use = inCode ? 'given in code' : plugin?.use ?? 'built-in'
    // A factory given in code is the embedder's to vouch for; a plugin and a built-in say what they need.
    const needs = inCode ? undefined : plugin?.needs ?? builtInDependencies[layer]
    return assemble(layer, use, () => build(components), { components, needs, shape: LAYER_SHAPE[layer] })
  }
  for (const [layer, p] of Object.entries(plugins)) log.info(`layer ${layer}: ${p.use} (${p.file})`)
  return { layers, make }
}

async function wire (opts: Resolved, id: string, dataDir: string, root: Logger, closeLog: () => Promise<void>): Promise<RunningNode> {
  const { config } = opts
  const { layers, make } = await chooseLayers(opts, dataDir, root.child('plugins'), id)
  const identity = await loadIdentity({ keys: opts.keys })
  if (identity.info.cluster !== config.cluster) {
    throw new Error(`the node certificate is for cluster "${identity.info.cluster}", but this node is configured for cluster "${config.cluster}"`)
  }
  const tls = { ca: identity.ca, cert: identity.cert, key: identity.key, cluster: config.cluster }
  const containment = await probeContainment()
  const init = layerInits(config, dataDir, containment)
  const log = (layer: string): Logger => root.child(layer)
  const clock = clockOf(opts)

  const transport = make('transport', { clock, identity: tls, log: log('transport') }, (c) => layers.transport(init.transport)(c))
  const discoveryLayer = make('discovery', { clock, log: log('discovery'), dataDir, nodeId: id, listenPort: portOf(config.listen) },
    (c) => layers.discovery(init.discovery)(c))
  const leaseFactory = layers.lease
  const leaseLayer = leaseFactory === undefined
    ? undefined
    : new LeaseHolder({ lease: make('lease', { clock, log: log('lease') }, (c) => leaseFactory(init.lease)(c)), holder: id, log: log('lease'), clock })
  const self = { id, address: config.advertise, characteristics: await characteristics(config, identity.info, containment, clock.now()) }
  const membershipLayer = make('membership', { clock, scheduler: clock, transport, lease: leaseLayer, log: log('membership'), self },
    (c) => layers.membership({ seeds: () => discoveryLayer.peers(), ...init.membership })(c))
  const hubLayer = make('hubs', { clock, membership: membershipLayer, log: log('hubs') }, (c) => layers.hubs(init.hubs)(c))
  const specLayer = make('desired', { clock, transport, membership: membershipLayer, hubs: hubLayer, log: log('spec'), cluster: config.cluster },
    (c) => layers.desired(init.desired)(c))
  followSpec(specLayer, { hubs: hubLayer, transport, membership: membershipLayer, hubsPolicy: config.hubs })
  const scheduler = make('scheduler', { clock, log: log('scheduler') }, (c) => layers.scheduler({})(c))
  const runtimes = make('runtime', { clock, log: log('runtime') }, (c) => layers.runtime({})(c))

  // The api and the proxy are made before the supervisor (it gives instances their keys and addresses): they ask it only when a request comes.
  let supervisorRef: Supervisor | undefined
  const instanceUsage = async (): ReturnType<NonNullable<Supervisor['usage']>> => await supervisorRef?.usage?.() ?? {}
  const api = make('api', { clock, membership: membershipLayer, hubs: hubLayer, spec: specLayer, log: log('api'), instanceUid: (i: string) => supervisorRef?.uidOf?.(i), instanceUsage },
    (c) => layers.api()(c))
  const stateLayer = make('state', { clock, transport, membership: membershipLayer, log: log('state') }, (c) => layers.state(init.state)(c))
  const proxyLayer = make('proxy', { clock, identity: tls, transport, membership: membershipLayer, hubs: hubLayer, spec: specLayer, local: () => supervisorRef?.report() ?? [], usage: instanceUsage, log: log('proxy') },
    (c) => layers.proxy()(c))
  const supervisorLayer = make('supervisor', {
    clock,
    spec: specLayer, membership: membershipLayer, hubs: hubLayer, api, state: stateLayer, proxy: proxyLayer, lease: leaseLayer, runtimes, schedule: scheduler.schedule, log: log('supervisor')
  }, (c) => layers.supervisor(init.supervisor)(c))
  supervisorRef = supervisorLayer

  const journalLayer = make('journal', { clock, membership: membershipLayer, hubs: hubLayer, spec: specLayer, supervisor: supervisorLayer, log: log('journal') },
    (c) => layers.journal(init.journal)(c))
  const healthLayer = make('health', { clock, membership: membershipLayer, supervisor: supervisorLayer, log: log('health'), dataDir }, (c) => layers.health(init.health)(c))
  const controlLayer = make('control', { clock, transport, membership: membershipLayer, hubs: hubLayer, spec: specLayer, supervisor: supervisorLayer, journal: journalLayer, proxy: proxyLayer, health: healthLayer, dataDir, log: log('control') },
    (c) => layers.control()(c))
  const system = new System([
    { name: 'transport', component: transport },
    // Right after the transport: it listens to the layers' events and must hear them all.
    { name: 'journal', component: journalLayer },
    { name: 'discovery', component: discoveryLayer },
    // Before membership, so it stops after it: the lease is released once this node has left.
    ...(leaseLayer === undefined ? [] : [{ name: 'lease', component: leaseLayer }]),
    { name: 'membership', component: membershipLayer },
    { name: 'hubs', component: hubLayer },
    { name: 'desired', component: specLayer },
    { name: 'api', component: api },
    { name: 'state', component: stateLayer },
    { name: 'proxy', component: proxyLayer },
    // Before the supervisor: a first reconcile that never ends (a code fetch that hangs) is one it must see begin.
    { name: 'health', component: healthLayer },
    { name: 'supervisor', component: supervisorLayer },
    { name: 'control', component: controlLayer }
  ], root)
  await system.start()
  root.info(`node ${id} up at ${membershipLayer.address} in cluster ${config.cluster} (${Math.round(process.uptime() * 1000)} ms after process start)`)
  return {
    id,
    get address () { return membershipLayer.address },
    log: root,
    transport,
    membership: membershipLayer,
    hubs: hubLayer,
    spec: specLayer,
    supervisor: supervisorLayer,
    journal: journalLayer,
    stop: async () => { await system.stop(); root.info('stopped'); await closeLog() }
  }
}

/**
 * The spec flows back up as events: its hub policy, revoked certificates and downing
 * strategy take effect at once, laid over what image.json says.
 */
function followSpec (desired: SpecLayer, to: { hubs: Hubs, transport: Transport, membership: Membership, hubsPolicy: NodeConfig['hubs'] }): void {
  desired.events.on('applied', ({ spec }) => {
    to.hubs.setPolicy({ ...to.hubsPolicy, ...spec.cluster.hubs })
    to.transport.setRevoked(spec.cluster.revokedSerials)
    to.membership.setDowning(spec.cluster.downing)
  })
}

/** What this node tells the cluster about itself; the scheduler places container services only where an engine answered. */
async function characteristics (config: NodeConfig, cert: { serial: string, notAfter: Date }, containment: Containment, now: number): Promise<Characteristics> {
  return {
    ...measureCharacteristics(config.characteristics, config.labels, now),
    secrets: await listSecrets(config.secrets),
    containment: containment.pidNamespace ? 'pid-namespace' : 'process-group',
    runtimes: await probeRuntimes(dockerSocket(config.docker?.socket)),
    certificate: { serial: cert.serial, notAfter: cert.notAfter.getTime() }
  }
}

/**
 * node.log as a log sink that never throws: on a full or read-only disk a failed write
 * would otherwise surface as an exception in whatever code was logging (and the health
 * monitor would fail to say why the node is unhealthy). Lines go on to stderr; the file
 * part says once that it stopped, and once that it writes again.
 */
function fileSink (file: RotatingLog): LogSink {
  let failing: string | undefined
  return {
    write: (line) => {
      try {
        file.write(line)
        if (failing !== undefined) {
          const was = failing
          failing = undefined
          file.write(`${isoTime(Date.now())} warn  node.log: writing again (lines logged while it failed with ${was} are on stderr only)`)
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err)
        if (failing === code) return
        failing = code
        process.stderr.write(`node.log: cannot write ${file.path} (${code}); its lines go to stderr only until it can\n`)
      }
    }
  }
}
