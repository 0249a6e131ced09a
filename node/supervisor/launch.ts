/**
 * Everything one instance needs before its first run, done in order: its secrets and
 * environment, its ports, its state directory (kept, migrated, restored or empty), its
 * user, and the ManagedProcess that will run it on the right runtime. plan.ts decides
 * that it starts and the executor (executor.ts) asks for it; this does the work.
 */
import { join } from 'node:path'
import { hostOf, joinHostPort } from '../address'
import type { LocalApi } from '../api'
import type { Clock } from '../clock'
import type { Logger } from '../log'
import type { ImageRuntime, Runtime } from '../runtime/contract'
import type { Assignment } from '../scheduler'
import type { ServiceSpec } from '../desired/types'
import type { StateLayer } from '../state'
import type { Containment } from './contain'
import { bindHosts, expandVars, instanceEnvironment, portNames, resolveHealth } from './environment'
import type { PortBook } from './ports'
import { ManagedProcess } from './process'
import { resolveEnv, withoutSecrets } from './secrets'
import type { InstanceUsers } from './users'
import type { Watchdog } from './watchdog'

/** One instance this node runs. */
export interface Instance {
  assignment: Assignment
  version: string
  ports: Array<[string, number]>
  address: string
  proc: ManagedProcess
  logPath: string
  /** The prepared code tree it runs in (kept on disk while it runs). */
  codeDir: string
  stateDir: string
  stateNote: string
  generation?: number
}

export interface LaunchContext {
  dataDir: string
  secretsDir?: string
  logMaxBytes?: number
  logKeep?: number
  containment: Containment
  users?: InstanceUsers
  watchdog?: Watchdog
  ports: PortBook
  /** Runs of command services. */
  processes: Runtime
  /** Runs of image services. */
  images: ImageRuntime
  /** The node's mesh address: instances that bind `node` listen on its host. */
  address: string
  api: LocalApi
  state: StateLayer
  proxy?: { addressesFor (service: string): Promise<Record<string, string>> }
  log: Logger
  /** The supervisor's clock, which the instance's restarts and checks run on. */
  clock: Clock
}

export function logPathOf (dataDir: string, instance: string): string {
  return join(dataDir, 'logs', `${instance}.log`)
}

/**
 * Prepares `a` to run `version` from `codeDir` (or from `image`); `begin` starts it. Throws,
 * in words, when something it needs cannot be had (a pinned port taken, a state source out
 * of reach, no engine).
 */
export async function prepareInstance (x: LaunchContext, a: Assignment, svc: ServiceSpec, codeDir: string, version: string, specVersion: string, image?: string): Promise<{ inst: Instance, begin: () => void }> {
  const fromSpec = await resolveEnv(svc, x.secretsDir)
  const hosts = bindHosts(svc.bind, hostOf(x.address))
  const pinned: Record<string, number | undefined> = Object.fromEntries(Object.entries(svc.ports ?? {}).map(([name, p]) => [name, p.port]))
  // A PORT set in the spec's env pins the first port, as it did before named ports.
  const names = portNames(svc)
  if (/^[0-9]+$/.test(fromSpec.PORT ?? '') && pinned[names[0]] === undefined) pinned[names[0]] = Number(fromSpec.PORT)
  const ports = await x.ports.portsFor(a.instance, names, pinned, hosts.listen)
  // Where the state comes from (kept, migrated, restored from a snapshot, or empty) is
  // decided before the process starts; a source that cannot be reached yet stops the start.
  const st = await x.state.prepare(a.instance, svc.state, { once: svc.placement.kind === 'singleton' })
  const logPath = logPathOf(x.dataDir, a.instance)
  const user = await x.users?.prepare({ service: a.service, instance: a.instance, stateDir: st.dir, codeDir, ports })
  const env = instanceEnvironment({
    node: a.node,
    service: a.service,
    instance: a.instance,
    spec: specVersion,
    api: x.api.url,
    apiKey: x.api.keyFor(a.instance),
    ports,
    listenHost: hosts.listen,
    stateDir: st.dir,
    env: fromSpec,
    uses: await x.proxy?.addressesFor(a.service)
  })
  // Secrets reach the process through its environment only: a command line is readable by
  // every user of the machine (and lands in the instance log), so `$SECRET` is left for a shell.
  const expandable = withoutSecrets(env, svc)
  const command = expandVars(svc.run.command ?? '', expandable)
  const args = (svc.run.args ?? []).map((v) => expandVars(v, expandable))
  let runtime = x.processes
  if (image !== undefined) {
    const e = await x.images.connect()
    if ('reason' in e) throw new Error(e.reason)
    runtime = e.runtime
    await x.images.mark()
  }
  const cwd = join(codeDir, svc.run.cwd ?? '.')
  const proc = new ManagedProcess({
    id: a.instance,
    command,
    ...(image === undefined ? {} : { image: { ref: image, service: a.service } }),
    runtime,
    args,
    containment: x.containment,
    user,
    fence: svc.placement.kind === 'singleton' ? x.watchdog : undefined,
    recordDir: join(x.dataDir, 'run'),
    env,
    cwd,
    logPath,
    log: x.log,
    restart: { policy: svc.restart?.policy ?? 'always', backoffMs: svc.restart?.backoffMs, maxBackoffMs: svc.restart?.maxBackoffMs },
    health: resolveHealth(svc.health, expandable, ports[0][1], hosts.dial),
    memoryLimitMb: svc.resources?.memoryMb,
    ...(svc.resources?.cpuShares === undefined && svc.resources?.cpus === undefined ? {} : { cpu: { shares: svc.resources.cpuShares, cpus: svc.resources.cpus } }),
    stopGraceMs: svc.stopGraceMs,
    logMaxBytes: x.logMaxBytes,
    logKeep: x.logKeep,
    clock: x.clock
  })
  const address = joinHostPort(hosts.dial, ports[0][1])
  const inst: Instance = { assignment: a, version, ports, address, proc, logPath, codeDir, stateDir: st.dir, stateNote: st.note, generation: st.generation }
  const begin = (): void => {
    const portsText = ports.map(([n, p]) => (names.length === 1 ? String(p) : `${n} ${p}`)).join(', ')
    x.log[st.outcome === 'empty' && st.movedAside !== undefined ? 'warn' : 'info'](`starting ${a.instance} (${image === undefined ? command : `container from ${image}`} ${args.join(' ')}; version ${version}; ${ports.length === 1 ? 'port' : 'ports'} ${portsText}; state: ${st.note})`)
    proc.start()
    x.state.attach(a.instance, svc.state, { cwd, env: { ...env, ...(user === undefined ? {} : { HOME: user.home, TMPDIR: user.tmpDir }) }, uid: user?.uid, gid: user?.gid })
  }
  return { inst, begin }
}
