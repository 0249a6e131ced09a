/**
 * The Docker runtime: a run is a container, created and watched through the Engine API
 * (dockerode over the engine's socket; never the docker CLI). Containers use the host
 * network (instances bind the node's addresses and ports, like processes), run with the
 * engine's init as PID 1 (signals reach the command, zombies are reaped), have the memory
 * limit in their cgroup (an OOM kill is reported as such), the instance's state dir bind-
 * mounted at the same path, and labels naming the node, the instance and the service, so
 * a node starting after a crash finds and removes what it left (endContainerLeftovers).
 * A container is removed by origin once its exit code and OOM flag have been read.
 *
 * The node sees a container's processes in its own /proc (their PID namespace, with the
 * container's init as the namespace's init), so usage is measured exactly as for a process
 * instance, and the watchdog fences a singleton by SIGKILL to the container's init pid: the
 * kernel ends the whole namespace, and the engine sees the container exit.
 *
 * @example
 *   const engine = await connectDocker({ socket: '/var/run/docker.sock' })
 *   if ('docker' in engine) {
 *     for (const line of await endContainerLeftovers(engine.docker, nodeId, log)) log.warn(line)
 *     new ManagedProcess({ ..., image: { ref: 'redis:7', service: 'cache' }, runtime: dockerRuntime({ docker: engine.docker, nodeId }) })
 *   }
 */
import { Writable } from 'node:stream'
import type Dockerode from 'dockerode'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { signalOfStatus } from '../supervisor/contain'
import { pidNsOf, signalProcess, startTimeOf, usageOf } from '../supervisor/procfs'
import type { RunExit, RunHandle, RunRequest, RunUsage, Runtime } from './contract'
import type { ContainerGuard } from './guard'

export interface DockerRuntimeInit {
  docker: Dockerode
  /** Labels every container `origin.node=<nodeId>`: what a restarting node ends. */
  nodeId: string
  /** How long after its exit a container's output may still arrive. @default 1000 */
  drainMs?: number
  /** Ends the containers should the node be killed (guard.ts). @default none: they run on until the node starts again */
  guard?: ContainerGuard
}

export const LABEL_NODE = 'origin.node'
export const LABEL_INSTANCE = 'origin.instance'
export const LABEL_SERVICE = 'origin.service'

/** The engine's socket: the node's config, else DOCKER_HOST, else the usual path. */
export function dockerSocket (configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return configured ?? env.DOCKER_HOST ?? '/var/run/docker.sock'
}

/** dockerode's connection options for a socket path or a `unix://` / `tcp://` address. */
export function connectionOf (socket: string): { socketPath: string } | { host: string, port: number, protocol: 'http' } {
  if (socket.startsWith('unix://')) return { socketPath: socket.slice('unix://'.length) }
  const tcp = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):([0-9]{1,5})\/?$/.exec(socket)
  if (tcp !== null) return { host: tcp[1].replace(/^\[|\]$/g, ''), port: Number(tcp[2]), protocol: 'http' }
  if (socket.startsWith('/')) return { socketPath: socket }
  throw new Error(`cannot use Docker engine address ${JSON.stringify(socket)}: give a socket path, unix:///path or tcp://host:port`)
}

/**
 * A client of the engine at `socket`, once it answers a ping; or why there is none, in
 * words. dockerode is loaded here only: a node with no container service never loads it.
 */
export async function connectDocker (o: { socket: string, timeoutMs?: number }): Promise<{ docker: Dockerode, version: string } | { reason: string }> {
  let docker: Dockerode
  try {
    const { default: Docker } = await import('dockerode')
    docker = new Docker({ ...connectionOf(o.socket), timeout: o.timeoutMs ?? 5000 })
    const v = await docker.version()
    // Calls that wait (wait, attach) must not time out: a client without the timeout serves them.
    return { docker: new Docker(connectionOf(o.socket)), version: v.Version }
  } catch (err) {
    return { reason: `no Docker engine reachable at ${o.socket}: ${errorMessage(err)}` }
  }
}

/** A name docker accepts (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), readable in `docker ps`. */
export function containerName (nodeId: string, instance: string, at: number): string {
  const clean = (s: string): string => s.replace(/[^a-zA-Z0-9_.-]+/g, '_')
  return `origin-${clean(nodeId)}-${clean(instance)}-${at.toString(36)}`
}

/** The create options of a run's container: pure, so they can be checked without an engine. */
export function containerOptions (nodeId: string, req: RunRequest, at: number): Dockerode.ContainerCreateOptions {
  if (req.program.kind !== 'image') throw new Error(`the docker runtime runs images, not command ${req.program.command}`)
  const { image, service, workdir } = req.program
  const stateDir = req.env.ORIGIN_STATE_DIR
  const memory = req.memoryLimitMb === undefined ? {} : { Memory: req.memoryLimitMb * 1024 * 1024, MemorySwap: req.memoryLimitMb * 1024 * 1024 }
  return {
    name: containerName(nodeId, req.id, at),
    Image: image,
    // No args: the image's own CMD runs.
    ...(req.args.length > 0 ? { Cmd: req.args } : {}),
    Env: Object.entries(req.env).map(([k, v]) => `${k}=${v}`),
    Labels: { [LABEL_NODE]: nodeId, [LABEL_INSTANCE]: req.id, [LABEL_SERVICE]: service },
    ...(workdir === undefined ? {} : { WorkingDir: workdir }),
    ...(req.user === undefined ? {} : { User: `${req.user.uid}:${req.user.gid}` }),
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      NetworkMode: 'host',
      // An init as PID 1: a command there would ignore SIGTERM it has no handler for.
      Init: true,
      // Removed by origin once the exit code and the OOM flag are read.
      AutoRemove: false,
      RestartPolicy: { Name: 'no' },
      // No swap beyond the limit (the engine's default doubles it): the limit is what the spec says.
      ...memory,
      ...(req.cpu?.shares === undefined ? {} : { CpuShares: req.cpu.shares }),
      ...(req.cpu?.cpus === undefined ? {} : { NanoCpus: Math.round(req.cpu.cpus * 1e9) }),
      ...(stateDir === undefined ? {} : { Binds: [`${stateDir}:${stateDir}`] }),
      ...(req.user?.lowPorts === true ? { CapAdd: ['NET_BIND_SERVICE'] } : {})
    }
  }
}

export function dockerRuntime (init: DockerRuntimeInit): Runtime {
  return { kind: 'docker', start: async (req) => await startContainer(init, req) }
}

async function startContainer (init: DockerRuntimeInit, req: RunRequest): Promise<RunHandle> {
  const { docker } = init
  // Real time in the name: it must be unique on the host's engine, across node restarts and clocks.
  const container = await docker.createContainer(containerOptions(init.nodeId, req, Date.now()))
  try {
    // Attached and waited on before the start: no output and no exit can be missed.
    const stream = await container.attach({ stream: true, stdout: true, stderr: true, logs: false })
    const exited = container.wait({ condition: 'next-exit' }) as Promise<{ StatusCode: number }>
    await container.start()
    const info = await container.inspect()
    return new ContainerRun(init, container, stream, exited, info.State.Running ? info.State.Pid : 0, req)
  } catch (err) {
    await container.remove({ force: true }).catch(() => undefined)
    throw new Error(errorMessage(err).replace(/^\(HTTP code [0-9]+\) [a-z ]+- /, ''))
  }
}

class ContainerRun implements RunHandle {
  readonly what: string
  readonly started: string
  readonly pid: number | undefined
  readonly memoryScope = 'the whole container'
  readonly enforcesMemory: boolean
  readonly gone: Promise<void>
  readonly exit: Promise<RunExit>
  private readonly init: { pid: number, startTime: number, ns: string } | undefined
  private over = false
  private paused = false
  private queue: Promise<void> = Promise.resolve()
  private readonly log: Logger

  constructor (private readonly o: DockerRuntimeInit, private readonly container: Dockerode.Container, stream: NodeJS.ReadWriteStream, exited: Promise<{ StatusCode: number }>, pid: number, req: RunRequest) {
    const short = container.id.slice(0, 12)
    this.log = req.log
    this.what = `container ${short}`
    this.pid = pid > 0 ? pid : undefined
    this.started = `container ${short}${this.pid === undefined ? '' : ` (pid ${this.pid})`}`
    this.enforcesMemory = req.memoryLimitMb !== undefined
    const startTime = this.pid === undefined ? undefined : startTimeOf(this.pid)
    const ns = this.pid === undefined ? undefined : pidNsOf(this.pid)
    // Where the node cannot see the container's processes (another PID namespace), it measures nothing and fences nothing.
    if (this.pid !== undefined && startTime !== undefined && ns !== undefined) this.init = { pid: this.pid, startTime, ns }
    else if (this.pid !== undefined) req.log.warn(`cannot see the processes of ${this.what} in this node's /proc: its memory and CPU are not measured, and the watchdog cannot fence it`)
    const sink = (which: 'out' | 'err'): Writable => new Writable({ write: (chunk: Buffer, _enc, cb) => { req.output(which, chunk); cb() } })
    container.modem.demuxStream(stream, sink('out'), sink('err'))
    const closed = new Promise<void>((resolve) => { stream.once('end', resolve); stream.once('close', resolve); stream.once('error', () => resolve()) })
    const code = this.waitExit(exited)
    if (this.init !== undefined) o.guard?.track(container.id, `p:${this.init.pid}:${this.init.startTime}`)
    this.gone = code.then(() => { this.over = true; o.guard?.untrack(container.id) })
    this.exit = code.then(async (status) => await this.afterExit(status, closed, stream))
  }

  /** The exit status; should the wait call break (the engine restarted), the container's state is polled instead. */
  private async waitExit (exited: Promise<{ StatusCode: number }>): Promise<number | null> {
    try {
      return (await exited).StatusCode
    } catch (err) {
      this.log.warn(`lost the wait on ${this.what} (${errorMessage(err)}); polling its state`)
      for (;;) {
        const state = await this.container.inspect().then((i) => i.State).catch(() => undefined)
        if (state === undefined) return null
        if (!state.Running) return state.ExitCode
        // Real time: the engine's container, not the cluster, is waited on.
        await new Promise((resolve) => setTimeout(resolve, 1000))
      }
    }
  }

  private async afterExit (status: number | null, closed: Promise<void>, stream: NodeJS.ReadWriteStream): Promise<RunExit> {
    let oomKilled = false
    let code = status
    try {
      const state = (await this.container.inspect()).State
      oomKilled = state.OOMKilled
      code = state.ExitCode
    } catch (err) {
      this.log.warn(`cannot inspect ${this.what} after its exit: ${errorMessage(err)}`)
    }
    // Real time: the engine's output stream drains at the host's pace.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([closed, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.o.drainMs ?? 1000) })])
    clearTimeout(timer)
    const s = stream as Partial<{ destroy: () => void }>
    s.destroy?.()
    await this.container.remove({ force: true }).catch((err) => this.log.warn(`cannot remove ${this.what}: ${errorMessage(err)}; the node removes it when it next starts`))
    // The engine's init exits 128+N when the command was killed by signal N, as the process runtime's does.
    const signal = oomKilled ? 'SIGKILL' : signalOfStatus(code) ?? null
    return { code: signal === null ? code : null, signal, ...(oomKilled ? { oomKilled } : {}) }
  }

  /** Requests to the engine run one after the other: a resume must not overtake its pause. */
  private inOrder (what: string, fn: () => Promise<unknown>): void {
    this.queue = this.queue.then(async () => {
      if (!this.over) await fn()
    }).catch((err) => {
      // 409: it stopped meanwhile (its exit is on the way); 304: already in the state asked for.
      const status = (err as { statusCode?: number }).statusCode
      if (!this.over && status !== 409 && status !== 304) this.log.error(`cannot ${what} ${this.what}: ${errorMessage(err)}`)
    })
  }

  terminate (_deadline: number): void {
    this.inOrder('stop', async () => {
      // A frozen container cannot handle SIGTERM.
      if (this.paused) { await this.container.unpause(); this.paused = false }
      await this.container.kill({ signal: 'SIGTERM' })
    })
  }

  kill (): void {
    // Synchronous first (usable on the node's 'exit'): SIGKILL to the container's init ends its namespace.
    if (this.init !== undefined && !this.over && startTimeOf(this.init.pid) === this.init.startTime) signalProcess(this.init.pid, 'SIGKILL', this.log)
    this.inOrder('kill', async () => {
      if (this.paused) { await this.container.unpause(); this.paused = false }
      await this.container.kill({ signal: 'SIGKILL' })
    })
  }

  pause (): void {
    this.inOrder('pause', async () => { await this.container.pause(); this.paused = true })
  }

  resume (): void {
    this.inOrder('resume', async () => { if (this.paused) await this.container.unpause(); this.paused = false })
  }

  async usage (): Promise<RunUsage> {
    if (this.init === undefined || this.over) return { pids: [], rssKb: 0, cpuTicks: 0 }
    return await usageOf({ kind: 'pidns', ns: this.init.ns, init: this.init })
  }

  fenceTargets (): string[] {
    return this.init === undefined || this.over ? [] : [`p:${this.init.pid}:${this.init.startTime}`]
  }
}

/**
 * For a node starting: removes (force: killed if running) every container labelled with
 * this node's id, left by a previous run that died without removing them. Returns what it
 * ended, in words for the log.
 */
export async function endContainerLeftovers (docker: Dockerode, nodeId: string, log?: Logger): Promise<string[]> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${LABEL_NODE}=${nodeId}`] } })
  const ended: string[] = []
  for (const c of found) {
    try {
      await docker.getContainer(c.Id).remove({ force: true })
      ended.push(`ended container ${c.Id.slice(0, 12)} of ${c.Labels[LABEL_INSTANCE] ?? '?'} (${c.State}), left by a previous run of this node`)
    } catch (err) {
      log?.error(`cannot remove container ${c.Id.slice(0, 12)} of ${c.Labels[LABEL_INSTANCE] ?? '?'}, left by a previous run of this node: ${errorMessage(err)}`)
    }
  }
  return ended
}

/** Every container of this node, for its graceful stop: none is left behind. */
export async function removeContainersOf (docker: Dockerode, nodeId: string): Promise<number> {
  return (await endContainerLeftovers(docker, nodeId)).length
}
