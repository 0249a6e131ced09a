/**
 * The one place that wires a node: identity -> transport -> journal -> membership -> hubs -> ... -> control.
 * Layers start in that order and stop in reverse (membership's stop is the graceful
 * leave). A plugin replaces a layer by passing a factory of the same shape in `layers`, or
 * by naming it in image.json's `layers` (node/plugins.ts loads it before anything is made).
 */
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { ImageConfig } from './config/image'
import { control } from './control'
import { discovery as defaultDiscovery } from './discovery'
import { hubs as defaultHubs, type Hubs } from './hubs'
import { loadNodeId, measureCharacteristics } from './self'
import { dockerSocket } from './runtime/docker'
import { probeRuntimes } from './runtime/probe'
import { loadIdentity } from './keys/files'
import { createLogger, stderrSink, type LogSink, type Logger } from './log'
import { RotatingLog } from './supervisor/logfile'
import { membership as defaultMembership, membershipDefaults, LeaseHolder, type LeaseFactory, type Membership } from './membership'
import { assemble, fetchSpecPlugins, loadLayerPlugins } from './plugins'
import { System } from './system'
import { webSocketTransport, type Transport } from './transport'
import { spec as defaultSpec, type SpecLayer, type SpecSource } from './desired'
import { localApi } from './api'
import { proxy } from './proxy'
import { journal, type Journal } from './journal'
import { state } from './state'
import { supervisor as defaultSupervisor, type Supervisor } from './supervisor'
import { listSecrets } from './supervisor/secrets'
import { probeContainment } from './supervisor/contain'
import { health } from './health'

export interface NodeOptions {
  config: ImageConfig
  /** Directory holding ca.crt, node.crt, node.key. */
  keys: string
  /** Layer factories to use instead of the defaults (plugins, tests). */
  layers?: Partial<Layers>
}

export interface Layers {
  transport: typeof webSocketTransport
  discovery: typeof defaultDiscovery
  membership: typeof defaultMembership
  hubs: typeof defaultHubs
  spec: typeof defaultSpec
  supervisor: typeof defaultSupervisor
  /** The `lease` downing strategy's engine; no default. */
  lease?: LeaseFactory
}

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

export async function startNode (opts: NodeOptions): Promise<RunningNode> {
  const { config } = opts
  const dataDir = resolve(config.data)
  await mkdir(dataDir, { recursive: true })
  const id = await loadNodeId(dataDir, config.name)
  // The node's own log is a file too, rotated like instance logs.
  const nodeLog = new RotatingLog({ path: join(dataDir, 'node.log'), maxBytes: config.log.maxBytes, keep: config.log.keep })
  const root = createLogger(id, { level: config.log.level, sinks: [stderrSink, fileSink(nodeLog)] })
  // image.json's plugins replace the defaults (spec:<name> ones fetched from the spec repo); factories passed in code replace both.
  const plugins = await fetchSpecPlugins(config.layers, config.spec, dataDir, { log: root.child('plugins'), nodeId: id })
    .then(loadLayerPlugins)
    .catch(async (err) => { await nodeLog.close(); throw err })
  const fromImage = Object.fromEntries(Object.entries(plugins).map(([layer, p]) => [layer, p.factory]))
  const layers: Layers = { transport: webSocketTransport, discovery: defaultDiscovery, membership: defaultMembership, hubs: defaultHubs, spec: defaultSpec, supervisor: defaultSupervisor, ...fromImage, ...opts.layers }
  // A layer made by its factory; a plugin's throw or a malformed result is refused naming the layer.
  const make = <T>(layer: keyof Layers, build: () => T): T => opts.layers?.[layer] !== undefined || plugins[layer] === undefined ? build() : assemble(layer, plugins[layer].use, build)
  const identity = await loadIdentity({ keys: opts.keys })
  if (identity.info.cluster !== config.cluster) {
    throw new Error(`the node certificate is for cluster "${identity.info.cluster}", but this node is configured for cluster "${config.cluster}"`)
  }
  const containment = await probeContainment()
  // Said in the characteristics: the scheduler places container services only where an engine answered.
  const runtimes = await probeRuntimes(dockerSocket(config.docker?.socket))
  const transport = make('transport', () => layers.transport({ listen: config.listen })({
    identity: { ca: identity.ca, cert: identity.cert, key: identity.key, cluster: config.cluster },
    log: root.child('transport')
  }))
  // Every discovery method at once; membership asks it for peers each time it tries seeds.
  const { seeds: moreSeeds, ...methods } = config.discovery ?? {}
  const discoveryLayer = make('discovery', () => layers.discovery({ seeds: [...config.seeds, ...(moreSeeds ?? [])], ...methods })({
    log: root.child('discovery'), dataDir, nodeId: id, listenPort: Number(config.listen.slice(config.listen.lastIndexOf(':') + 1))
  }))
  const secrets = await listSecrets(config.secrets)
  const leaseFactory = layers.lease
  const leaseLayer = leaseFactory === undefined
    ? undefined
    : new LeaseHolder({ lease: make('lease', () => leaseFactory({ key: `/origin/${config.cluster}/downing` })({ log: root.child('lease') })), holder: id, log: root.child('lease') })
  const membershipLayer = make('membership', () => layers.membership({ seeds: () => discoveryLayer.peers(), ...config.membership })({
    transport,
    lease: leaseLayer,
    log: root.child('membership'),
    self: {
      id,
      address: config.advertise,
      characteristics: {
        ...measureCharacteristics(config.characteristics, config.labels, Date.now()),
        secrets,
        containment: containment.pidNamespace ? 'pid-namespace' : 'process-group',
        runtimes,
        certificate: { serial: identity.info.serial, notAfter: identity.info.notAfter.getTime() }
      }
    }
  }))
  const hubLayer = make('hubs', () => layers.hubs({ policy: config.hubs })({ membership: membershipLayer, log: root.child('hubs') }))
  const specLayer = make('spec', () => layers.spec({ source: specSource(config), dataDir, tsTimeoutMs: config.spec?.tsTimeoutMs, limits: config.spec?.limits })({
    transport, membership: membershipLayer, hubs: hubLayer, log: root.child('spec'), cluster: config.cluster
  }))
  // The spec flows back up as events: hub policy and revoked certificates take effect at once.
  specLayer.events.on('applied', ({ spec }) => {
    hubLayer.setPolicy({ ...config.hubs, ...spec.cluster.hubs })
    transport.setRevoked(spec.cluster.revokedSerials)
    membershipLayer.setDowning(spec.cluster.downing)
  })
  // The supervisor is made after the api (it gives instances their keys): asked when a request comes.
  const api = localApi()({ membership: membershipLayer, hubs: hubLayer, spec: specLayer, log: root.child('api'), instanceUid: (i) => supervisorLayer?.uidOf?.(i), instanceUsage: async () => await supervisorLayer?.usage?.() ?? {} })
  const stateLayer = state({ dataDir })({ transport, membership: membershipLayer, log: root.child('state') })
  // The proxy reads the supervisor's instances only when a connection comes, so it can be made first.
  let supervisorRef: Supervisor | undefined
  const proxyLayer = proxy()({
    identity: { ca: identity.ca, cert: identity.cert, key: identity.key, cluster: config.cluster },
    transport, membership: membershipLayer, hubs: hubLayer, spec: specLayer,
    local: () => supervisorRef?.report() ?? [],
    usage: async () => await supervisorRef?.usage?.() ?? {},
    log: root.child('proxy')
  })
  const supervisorLayer = make('supervisor', () => layers.supervisor({ dataDir, logMaxBytes: config.log.maxBytes, logKeep: config.log.keep, fenceAfterMs: config.membership.suspectAfterMs ?? membershipDefaults.suspectAfterMs, secretsDir: config.secrets, containment, dockerSocket: config.docker?.socket })({ spec: specLayer, membership: membershipLayer, hubs: hubLayer, api, state: stateLayer, proxy: proxyLayer, lease: leaseLayer, log: root.child('supervisor') }))
  supervisorRef = supervisorLayer
  // The journal listens to the layers' events; it starts right after the transport so it hears them all.
  const journalLayer = journal({ dataDir, maxBytes: config.log.maxBytes, keep: config.log.keep })({ membership: membershipLayer, hubs: hubLayer, spec: specLayer, supervisor: supervisorLayer, log: root.child('journal') })
  // After the supervisor, whose events it reads; it speaks through the membership.
  const healthLayer = health(config.health)({ membership: membershipLayer, supervisor: supervisorLayer, log: root.child('health'), dataDir })
  const controlLayer = control()({ transport, membership: membershipLayer, hubs: hubLayer, spec: specLayer, supervisor: supervisorLayer, journal: journalLayer, dataDir, log: root.child('control') })
  const system = new System([
    { name: 'transport', component: transport },
    { name: 'journal', component: journalLayer },
    { name: 'discovery', component: discoveryLayer },
    // Before membership, so it stops after it: the lease is released once this node has left.
    ...(leaseLayer === undefined ? [] : [{ name: 'lease', component: leaseLayer }]),
    { name: 'membership', component: membershipLayer },
    { name: 'hubs', component: hubLayer },
    { name: 'spec', component: specLayer },
    { name: 'api', component: api },
    { name: 'state', component: stateLayer },
    { name: 'proxy', component: proxyLayer },
    // Health listens before the supervisor starts: a first reconcile that never ends (a
    // code fetch that hangs) is one it must see begin.
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
    stop: async () => { await system.stop(); root.info('stopped'); await nodeLog.close() }
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
          file.write(`${new Date().toISOString()} warn  node.log: writing again (lines logged while it failed with ${was} are on stderr only)`)
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

function specSource (config: ImageConfig): SpecSource {
  if (config.specDir !== undefined) return { kind: 'dir', dir: config.specDir }
  if (config.spec === undefined) return { kind: 'none' }
  const { url, ref, token, webhookSecret, allowedSigners } = config.spec
  return { kind: 'git', url, ref, token, webhookSecret, allowedSigners, pollIntervalMs: config.spec.pollIntervalMs ?? 5000 }
}
