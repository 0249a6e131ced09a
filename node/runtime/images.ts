/**
 * Where a container service's image comes from, on its node, through the Engine API:
 * - `{ ref }`: already on the node; origin does not pull from registries (a node may have
 *   none in reach, and a pull would make a start depend on one); a missing image is
 *   refused in words.
 * - `{ load }`: a tarball (`docker save`) in the service's code tree, loaded once per code
 *   version and tagged `origin/<service>:<version>-<recipe>` (and `ref`, if given).
 * - `{ build }`: a Dockerfile in the code tree, built with the tree as context by the
 *   classic builder, once per code version, tagged the same way.
 * Output goes to the service's build log; a failure names the service, the step and the
 * log. Two instances of a service on one node share one build. After a load or build, the
 * service's older origin images no container uses are removed.
 *
 * @example
 * const name = await ensureImage(docker, { build: {} }, { service: 'web', codeDir, codeVersion, buildLogPath, log })
 * // name === 'origin/web:3f2a91c0d4e5-1a2b3c', ready for docker.createContainer({ Image: name, ... })
 */
import { createReadStream } from 'node:fs'
import { mkdir, open, readdir, realpath, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type Dockerode from 'dockerode'
import { isoTime } from '../clock'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import { type ImageSpec, imageRepository, imageSpecProblem, imageTag } from './images-names'
import { followProgress, type StreamEnd } from './images-stream'

export type { ImageSpec } from './images-names'

export interface EnsureImageOptions {
  service: string
  /** The service's prepared code tree (spec repo folder, or its `code: { repo, ref }`). */
  codeDir: string
  /** The prepared tree's version: a new one makes a new image. */
  codeVersion: string
  /** Load and build output are appended here. */
  buildLogPath: string
  log: Logger
  /** The node's id, for messages. @default 'this node' */
  nodeId?: string
  /**
   * How long a load or build may take before it is abandoned (the engine cancels it): a
   * step that hangs (a RUN waiting on the network) must not hold the service's start for
   * ever. Too short fails slow honest builds, which then back off and fail again.
   * @default 1_800_000 (30 min)
   */
  timeoutMs?: number
}

const DEFAULT_TIMEOUT_MS = 30 * 60_000

/** Words for a give-up time: `20 s`, `30 min`. */
function span (ms: number): string {
  return ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`
}

/** The reason a load or build ended with an exception: the timeout in words, or the engine's message. */
function thrownReason (err: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return `it did not finish in ${span(timeoutMs)} and was stopped`
  return errorMessage(err).replace(/^\(HTTP code \d+\) [a-z ]+- /, '')
}

/** Loads and builds in flight, by engine and image name: a second caller waits for the first, even through another client of the same engine. */
const inFlight = new Map<string, Promise<string>>()

function engineOf (docker: Dockerode): string {
  const m = docker.modem as { socketPath?: unknown, host?: unknown, port?: unknown }
  return typeof m.socketPath === 'string' ? m.socketPath : `${String(m.host)}:${String(m.port)}`
}

/** The name of an image on the node for `image`, loading or building it first if needed. */
export async function ensureImage (docker: Dockerode, image: ImageSpec, o: EnsureImageOptions): Promise<string> {
  const problem = imageSpecProblem(image)
  if (problem !== undefined) throw new OriginError('E_SPEC_INVALID', `run.image of ${o.service} ${problem}`, { service: o.service })
  if (image.load === undefined && image.build === undefined) {
    const ref = image.ref as string
    if (await imageId(docker, ref, o) === undefined) {
      throw new OriginError('E_NOT_FOUND', `image ${ref} is not on ${o.nodeId === undefined ? 'this node' : `node ${o.nodeId}`}: load it, or give the service run.image.load / run.image.build; origin does not pull from registries`, { service: o.service, image: ref, node: o.nodeId })
    }
    return ref
  }
  const name = `${imageRepository(o.service)}:${imageTag(o.codeVersion, image)}`
  const key = `${engineOf(docker)}\0${name}`
  let p = inFlight.get(key)
  if (p === undefined) {
    p = make(docker, image, name, o).finally(() => inFlight.delete(key))
    inFlight.set(key, p)
  }
  return await p
}

async function make (docker: Dockerode, image: ImageSpec, name: string, o: EnsureImageOptions): Promise<string> {
  if (await imageId(docker, name, o) !== undefined) {
    if (image.ref !== undefined) await tag(docker, name, image.ref)
    return name
  }
  await mkdir(dirname(o.buildLogPath), { recursive: true })
  const log = await open(o.buildLogPath, 'a')
  // Real time: how long the engine took, for the log only.
  const started = Date.now()
  try {
    if (image.load !== undefined) await load(docker, image.load, image.ref, name, o, log)
    else await build(docker, image.build?.dockerfile ?? 'Dockerfile', image.ref, name, o, log)
  } finally {
    await log.close()
  }
  o.log.info(`image ${name} for ${o.service} is ready (${image.load !== undefined ? 'loaded' : 'built'} in ${((Date.now() - started) / 1000).toFixed(1)} s)`)
  await removeOlder(docker, o.service, name, o.log)
  return name
}

type Log = Awaited<ReturnType<typeof open>>

async function load (docker: Dockerode, path: string, ref: string | undefined, name: string, o: EnsureImageOptions, log: Log): Promise<void> {
  const file = await treeFile(o.codeDir, path, 'run.image.load', o.service)
  await log.write(`--- ${isoTime(Date.now())} loading ${path} (code ${o.codeVersion}) as ${name}\n`)
  const fail = (why: string): OriginError => new OriginError('E_START_FAILED', `loading the image of ${o.service} from ${path} failed: ${why}; see ${o.buildLogPath}`, { service: o.service, step: 'load', logPath: o.buildLogPath })
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const signal = AbortSignal.timeout(timeoutMs)
  const end: StreamEnd = { loaded: [] }
  try {
    await followProgress(await docker.loadImage(createReadStream(file), { quiet: false, abortSignal: signal }), log, end)
    // A stream cut by the timeout may end without an error line.
    if (signal.aborted) throw signal.reason
  } catch (err) {
    const why = thrownReason(err, signal, timeoutMs)
    await log.write(`ERROR: ${why}\n`)
    throw fail(why)
  }
  if (end.error !== undefined) throw fail(end.error)
  const source = ref !== undefined && end.loaded.includes(ref) ? ref : end.loaded.length === 1 ? end.loaded[0] : undefined
  if (source === undefined) {
    const what = end.loaded.length === 0 ? 'it held no image' : `it held ${end.loaded.length} images (${[...end.loaded].sort().join(', ')})`
    throw fail(`${what}; ${ref === undefined ? 'give run.image.ref naming the one to run' : `none is ${ref}`}`)
  }
  await tag(docker, source, name)
  if (ref !== undefined && source !== ref) await tag(docker, source, ref)
}

async function build (docker: Dockerode, dockerfile: string, ref: string | undefined, name: string, o: EnsureImageOptions, log: Log): Promise<void> {
  await treeFile(o.codeDir, dockerfile, 'run.image.build.dockerfile', o.service)
  await log.write(`--- ${isoTime(Date.now())} building ${name} from ${dockerfile} (code ${o.codeVersion})\n`)
  o.log.info(`building image ${name} for ${o.service} from ${dockerfile}`)
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const signal = AbortSignal.timeout(timeoutMs)
  const end: StreamEnd = { loaded: [] }
  try {
    const stream = await docker.buildImage({ context: o.codeDir, src: await readdir(o.codeDir) }, {
      t: name,
      dockerfile,
      // The classic builder, explicitly: BuildKit would need a session and its own daemon-side setup.
      version: '1',
      // RUN steps get the host's network: a node's engine may have no bridge (origin needs none).
      networkmode: 'host',
      rm: true,
      // No labels: the builder adds a step per label, and a failure's "Step 3/5" would not match the Dockerfile.
      forcerm: true,
      abortSignal: signal
    })
    await followProgress(stream, log, end)
    if (signal.aborted) throw signal.reason
    // A stream that ends without an error line and without the image is a failure too (the engine went away).
    if (end.error === undefined && await imageId(docker, name, o) === undefined) end.error = 'the engine ended the build without making the image'
  } catch (err) {
    const why = thrownReason(err, signal, timeoutMs)
    await log.write(`ERROR: ${why}\n`)
    end.error = why
  }
  if (end.error !== undefined) {
    throw new OriginError('E_START_FAILED', `build of image for ${o.service} failed${end.step === undefined ? '' : ` at ${end.step}`}: ${end.error}; see ${o.buildLogPath}`, { service: o.service, step: end.step ?? 'build', logPath: o.buildLogPath })
  }
  if (ref !== undefined) await tag(docker, name, ref)
}

/** The image's id, or undefined when the engine does not have it. */
async function imageId (docker: Dockerode, name: string, o: EnsureImageOptions): Promise<string | undefined> {
  try {
    return (await docker.getImage(name).inspect()).Id
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined
    throw new OriginError('E_START_FAILED', `the container engine did not answer about image ${name}: ${errorMessage(err)}`, { service: o.service, image: name })
  }
}

async function tag (docker: Dockerode, source: string, target: string): Promise<void> {
  const at = target.lastIndexOf(':')
  const hasTag = at > target.lastIndexOf('/')
  await docker.getImage(source).tag({ repo: hasTag ? target.slice(0, at) : target, tag: hasTag ? target.slice(at + 1) : 'latest' })
}

/** `path` in the code tree as a real file, refusing one that leaves the tree (also through a symbolic link). */
async function treeFile (codeDir: string, path: string, field: string, service: string): Promise<string> {
  const root = await realpath(codeDir)
  let real: string
  try {
    real = await realpath(join(root, path))
  } catch {
    throw new OriginError('E_START_FAILED', `${field} of ${service}: ${path} is not in the code tree (${codeDir})`, { service, file: path })
  }
  if (!real.startsWith(root + '/')) throw new OriginError('E_SPEC_INVALID', `${field} of ${service}: ${path} leads outside the code tree`, { service, file: path })
  if (!(await stat(real)).isFile()) throw new OriginError('E_START_FAILED', `${field} of ${service}: ${path} is not a file`, { service, file: path })
  return real
}

/**
 * Removes the service's other origin images that no container (running or stopped) uses,
 * so a node does not keep an image per commit it ever ran. Best effort: a failure is logged.
 */
async function removeOlder (docker: Dockerode, service: string, keep: string, log: Logger): Promise<void> {
  try {
    const repo = imageRepository(service)
    const used = new Set((await docker.listContainers({ all: true })).map((c) => c.ImageID))
    const images = await docker.listImages({ filters: { reference: [repo] } })
    for (const img of images) {
      if (used.has(img.Id)) continue
      for (const t of img.RepoTags ?? []) {
        if (!t.startsWith(repo + ':') || t === keep) continue
        await docker.getImage(t).remove().then(() => log.info(`removed ${t}, an older image of ${service} no container uses`), (err) => log.debug(`kept ${t}: ${errorMessage(err)}`))
      }
    }
  } catch (err) {
    log.warn(`could not remove older images of ${service}: ${errorMessage(err)}`)
  }
}
