/**
 * The node's Docker engine, as the supervisor sees it: connected on first need (dockerode
 * is loaded only then, so a node that runs only processes never pays for it), the
 * containers a previous run of this node left ended before anything starts, and images
 * made ready per service and code version with a backoff on failure, like code builds.
 *
 * A node that ever ran a container keeps a marker (DATA/containers.json); at its next start
 * it connects and removes every container labelled with its id, even when the spec has
 * no container service any more.
 *
 * @example
 *   const engine = new ContainerEngine({ socket: dockerSocket(config.docker?.socket), dataDir, nodeId, log })
 *   await engine.endLeftovers()            // at node start
 *   const e = await engine.connect()       // { runtime, docker } or { reason }
 *   const ref = await engine.image('web', { build: {} }, codeDir, codeVersion)
 */
import { existsSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type Dockerode from 'dockerode'
import { systemClock, type Clock } from '../clock'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import type { ImageRunSpec } from '../desired/types'
import { prepareBackoff } from '../supervisor/code'
import type { ImageRuntime, Runtime } from './contract'
import { connectDocker, dockerRuntime, endContainerLeftovers } from './docker'
import { ContainerGuard } from './guard'

export interface ContainerEngineInit {
  /** The engine's socket path or address (dockerSocket()). */
  socket: string
  dataDir: string
  nodeId: string
  log: Logger
  /** After a failed connection, the next try waits this long. @default 10000 */
  retryMs?: number
  /** The node's clock: the retry times of failed connections and images. @default systemClock */
  clock?: Clock
}

export type Engine = { docker: Dockerode, runtime: Runtime, version: string } | { reason: string }

interface ImageFailure { reason: string, failures: number, retryAt: number }

export class ContainerEngine implements ImageRuntime {
  private connected?: Promise<Engine>
  private failedAt = 0
  private marked = false
  private readonly images = new Map<string, Promise<string>>()
  private readonly failures = new Map<string, ImageFailure>()
  private readonly marker: string
  private readonly guard: ContainerGuard
  private readonly clock: Clock

  constructor (private readonly o: ContainerEngineInit) {
    this.clock = o.clock ?? systemClock
    // Not in DATA/run: the process runtime's endLeftovers removes every record there.
    this.marker = join(o.dataDir, 'containers.json')
    this.guard = new ContainerGuard({ log: o.log })
  }

  get socket (): string { return this.o.socket }

  /** The engine, or why there is none; a failure is retried after retryMs. */
  async connect (): Promise<Engine> {
    if (this.connected !== undefined) {
      const e = await this.connected
      if ('docker' in e || this.clock.now() - this.failedAt < (this.o.retryMs ?? 10_000)) return e
    }
    const attempt = connectDocker({ socket: this.o.socket }).then((r): Engine => {
      if ('reason' in r) { this.failedAt = this.clock.now(); return r }
      this.o.log.info(`Docker engine ${r.version} at ${this.o.socket}: container services can run here`)
      return { docker: r.docker, version: r.version, runtime: dockerRuntime({ docker: r.docker, nodeId: this.o.nodeId, guard: this.guard }) }
    })
    this.connected = attempt
    return await attempt
  }

  /** When a failed connection or image may be tried again. */
  nextRetry (): number | undefined {
    const times = [...this.failures.values()].map((f) => f.retryAt)
    if (this.failedAt > 0) times.push(this.failedAt + (this.o.retryMs ?? 10_000))
    return times.length === 0 ? undefined : Math.min(...times)
  }

  /** Before the first container of this node starts: its next start will look for leftovers. */
  async mark (): Promise<void> {
    if (this.marked) return
    await mkdir(dirname(this.marker), { recursive: true })
    await writeFile(this.marker, JSON.stringify({ socket: this.o.socket }) + '\n')
    this.marked = true
  }

  /**
   * For a node starting: if a previous run of it ran containers, removes every container
   * labelled with its id. Returns what it ended, in words for the log.
   */
  async endLeftovers (): Promise<string[]> {
    if (!existsSync(this.marker)) return []
    const e = await this.connect()
    if ('reason' in e) {
      this.o.log.error(`this node ran containers before, and cannot end what it left: ${e.reason}`)
      return []
    }
    const ended = await endContainerLeftovers(e.docker, this.o.nodeId, this.o.log)
    this.marked = true
    return ended
  }

  /** For a node stopping gracefully: any container of it still there (its instances have stopped) is removed, and the marker with it. */
  async stop (): Promise<void> {
    this.guard.close()
    if (!this.marked || this.connected === undefined) return
    const e = await this.connected
    if ('reason' in e) return
    try {
      for (const line of await endContainerLeftovers(e.docker, this.o.nodeId, this.o.log)) this.o.log.warn(line.replace('left by a previous run of this node', 'still there as the node stops'))
      await rm(this.marker, { force: true })
      this.marked = false
    } catch (err) {
      this.o.log.warn(`cannot list this node's containers as it stops: ${errorMessage(err)}; its next start ends them`)
    }
  }

  /**
   * The image to create `service`'s containers from, made ready once per code version and
   * recipe (node/runtime/images.ts). A failure is kept with a backoff: until its retry
   * time this fails at once with the same reason.
   */
  async image (service: string, spec: string | ImageRunSpec, codeDir: string, codeVersion: string, now = this.clock.now()): Promise<string> {
    const image = typeof spec === 'string' ? { ref: spec } : spec
    const key = `${service}\0${codeVersion}\0${JSON.stringify(image)}`
    let p = this.images.get(key)
    if (p === undefined) {
      const failed = this.failures.get(service)
      if (failed !== undefined && now < failed.retryAt) {
        throw new OriginError('E_START_FAILED', `${failed.reason}; retrying in ${Math.ceil((failed.retryAt - now) / 1000)} s (attempt ${failed.failures + 1})`, { service })
      }
      p = this.make(service, image, codeDir, codeVersion)
      this.images.set(key, p)
      p.then(() => { this.failures.delete(service) }, (err) => {
        if (this.images.get(key) === p) this.images.delete(key)
        const failures = (this.failures.get(service)?.failures ?? 0) + 1
        const delay = Math.min(prepareBackoff.firstMs * 2 ** (failures - 1), prepareBackoff.maxMs)
        const reason = errorMessage(err)
        this.failures.set(service, { reason, failures, retryAt: this.clock.now() + delay })
        this.o.log.warn(`the image of ${service} failed (attempt ${failures}): ${reason}; next try in ${(delay / 1000).toFixed(0)} s`)
      })
    }
    return await p
  }

  private async make (service: string, image: ImageRunSpec, codeDir: string, codeVersion: string): Promise<string> {
    const e = await this.connect()
    if ('reason' in e) throw new OriginError('E_START_FAILED', e.reason, { service })
    // Loaded lazily with the engine: a node without container services never reads it.
    const { ensureImage } = await import('./images')
    return await ensureImage(e.docker, image, {
      service,
      codeDir,
      codeVersion,
      buildLogPath: join(this.o.dataDir, 'logs', `build-${service}.log`),
      log: this.o.log,
      nodeId: this.o.nodeId
    })
  }
}
