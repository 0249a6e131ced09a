/**
 * Where a service's code comes from, on disk: its own paths of the spec repo (by default
 * `services/<name>/`, written once per content), or another git repo + ref fetched with
 * isomorphic-git into the data dir, with an optional build command run once per commit.
 * Each prepared tree is written to a temp dir and renamed into place, so a half-written
 * tree is never run; file modes from git (the executable bit, symbolic links inside the
 * tree) are kept. A preparation that fails (fetch, build) is retried with exponential
 * backoff, like a crashing process, and what failed is kept for the operator to see.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, open, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { dirname, join, posix } from 'node:path'
import { systemClock, type Clock } from '../clock'
import { OriginError, errorMessage } from '../errors'
import { GitStore } from '../git/store'
import { withoutNodeFlags } from '../launch'
import type { Logger } from '../log'
import type { Applied } from '../desired'
import type { ServiceSpec } from '../desired/types'
import { codeDigest, filesUnder, servicePaths } from './version'

export interface PreparedCode {
  /** Directory the service runs in (before `run.cwd`). */
  dir: string
  /** Identifies the code: changes when the code does. */
  version: string
}

/** Backoff of failed preparations: first retry after `firstMs`, doubling up to `maxMs`. */
export const prepareBackoff = { firstMs: 2000, maxMs: 300_000 }

/** A build of a service's code: started, succeeded or failed, with the command or the reason. */
export interface BuildEvent { service: string, what: 'started' | 'succeeded' | 'failed', detail: string }

/** A preparation that failed and when it may be tried again. */
export interface PrepareFailure { reason: string, failures: number, retryAt: number, logPath?: string }

const SYMLINK = 0o120000

async function writeTree (target: string, files: Map<string, Buffer>, modes: Map<string, number> = new Map()): Promise<void> {
  if (existsSync(target)) return
  const tmp = `${target}.tmp-${process.pid}-${Date.now()}` // a unique name, not a time anything is decided by
  for (const [path, content] of files) {
    const file = join(tmp, path)
    if (!file.startsWith(tmp + '/')) throw new OriginError('E_SPEC_INVALID', `refusing to write ${path} outside the code directory`)
    await mkdir(dirname(file), { recursive: true })
    const mode = modes.get(path)
    if (mode === SYMLINK) {
      // A link that stays inside the tree is kept; one that leaves it would be a way out of the tree.
      const linkTarget = content.toString('utf8')
      const resolved = posix.normalize(posix.join(posix.dirname(path), linkTarget))
      if (posix.isAbsolute(linkTarget) || resolved.startsWith('../') || resolved === '..') {
        throw new OriginError('E_SPEC_INVALID', `${path} is a symbolic link to ${linkTarget}, outside the code tree`, { file: path })
      }
      await symlink(linkTarget, file)
      continue
    }
    await writeFile(file, content)
    if (mode !== undefined) await chmod(file, mode)
  }
  await mkdir(tmp, { recursive: true })
  await mkdir(dirname(target), { recursive: true })
  await rename(tmp, target).catch(async (err) => {
    await rm(tmp, { recursive: true, force: true })
    if (!existsSync(target)) throw err // else another preparation won the race: fine
  })
}

export class CodeCache {
  /** Prepared code by spec version and service: a branch is resolved once per spec version, not on every reconcile. */
  private readonly prepared = new Map<string, Promise<PreparedCode>>()

  constructor (
    private readonly dataDir: string,
    private readonly nodeId: string,
    private readonly log: Logger,
    /** Told when a build starts and how it ended (the journal records it). */
    private readonly onBuild: (b: BuildEvent) => void = () => {},
    /** When a failed preparation may be tried again. A build's own duration is the host's. */
    private readonly clock: Clock = systemClock
  ) {}

  /** Failed preparations by service, until one succeeds. */
  private readonly failures = new Map<string, PrepareFailure>()

  /**
   * The code for `service` under the applied spec, prepared once per spec version;
   * concurrent callers share the work. A failure is kept with a backoff: until its retry
   * time, prepare fails at once with the same reason (no request to the code repo, no
   * build). A `code.ref` that names a branch is resolved when the spec version is first
   * seen: to deploy new app code, change the spec (or pin a commit), as with an image tag.
   */
  async prepare (service: string, svc: ServiceSpec, applied: Pick<Applied, 'version' | 'files' | 'modes'>, now = this.clock.now()): Promise<PreparedCode> {
    const key = `${applied.version}:${service}`
    let p = this.prepared.get(key)
    if (p === undefined) {
      const failed = this.failures.get(service)
      if (failed !== undefined && now < failed.retryAt) {
        throw new OriginError('E_START_FAILED', `${failed.reason}; retrying in ${Math.ceil((failed.retryAt - now) / 1000)} s (attempt ${failed.failures + 1})`, { service })
      }
      p = svc.code === undefined ? this.fromSpec(service, svc, applied) : this.fromRepo(service, svc.code)
      this.prepared.set(key, p)
      p.then(() => { this.failures.delete(service) }, (err) => {
        if (this.prepared.get(key) === p) this.prepared.delete(key)
        const failures = (this.failures.get(service)?.failures ?? 0) + 1
        const delay = Math.min(prepareBackoff.firstMs * 2 ** (failures - 1), prepareBackoff.maxMs)
        const reason = errorMessage(err)
        this.failures.set(service, { reason, failures, retryAt: this.clock.now() + delay, logPath: (err as OriginError).data?.logPath as string | undefined })
        this.log.warn(`preparing the code of ${service} failed (attempt ${failures}): ${reason}; next try in ${(delay / 1000).toFixed(0)} s`)
      })
    }
    return await p
  }

  /** The failed preparation of `service`, if its last one failed. */
  failure (service: string): PrepareFailure | undefined {
    return this.failures.get(service)
  }

  /** When the earliest failed preparation may be retried. */
  nextRetry (): number | undefined {
    const times = [...this.failures.values()].map((f) => f.retryAt)
    return times.length === 0 ? undefined : Math.min(...times)
  }

  /**
   * Remove prepared trees nothing runs in any more (older spec versions, older commits of
   * code repos), so a long-lived node's disk does not fill with every version it ran.
   * Trees being prepared or in `inUse` stay, and so does everything of the current spec.
   */
  async prune (inUse: ReadonlySet<string>): Promise<void> {
    if (this.prepared.size === 0) return
    const current = new Set<string>()
    for (const p of this.prepared.values()) {
      const done = await p.catch(() => undefined)
      if (done === undefined) return // a preparation failed: keep everything this time
      current.add(done.dir)
    }
    const root = join(this.dataDir, 'code')
    const names = await readdir(root).catch(() => [] as string[])
    for (const name of names) {
      const dir = join(root, name)
      if (name === 'repos' || name.includes('.tmp-') || name.includes('.staging-') || inUse.has(dir) || current.has(dir)) continue
      await rm(dir, { recursive: true, force: true })
      this.log.debug(`removed unused code tree ${dir}`)
    }
  }

  /** Forget what older spec versions prepared (the trees stay on disk for instances still running them). */
  keepOnly (specVersion: string): void {
    for (const key of this.prepared.keys()) if (!key.startsWith(`${specVersion}:`)) this.prepared.delete(key)
  }

  private async fromSpec (service: string, svc: ServiceSpec, applied: Pick<Applied, 'files' | 'modes'>): Promise<PreparedCode> {
    const files = filesUnder(servicePaths(service, svc), applied.files)
    const modes = filesUnder(servicePaths(service, svc), applied.modes)
    const version = codeDigest(files, modes)
    const dir = join(this.dataDir, 'code', `${service}-spec-${version}`)
    await writeTree(dir, files, modes)
    return { dir, version: `spec-${version}` }
  }

  private async fromRepo (service: string, code: NonNullable<ServiceSpec['code']>): Promise<PreparedCode> {
    const repoKey = createHash('sha256').update(code.repo).digest('hex').slice(0, 12)
    const store = new GitStore(join(this.dataDir, 'code', 'repos', `${repoKey}.git`))
    await store.init()
    const remote = { url: code.repo, ref: code.ref, userAgent: `origin-node/${this.nodeId}` }
    let head: { ref: string, oid: string }
    try {
      head = await store.remoteHead(remote)
      if (!await store.has(head.oid)) await store.fetch(remote, head.ref)
    } catch (err) {
      throw new OriginError('E_START_FAILED', `fetching ${code.repo}${code.ref === undefined ? '' : ` ${code.ref}`} failed: ${errorMessage(err)}`, { service })
    }
    const buildKey = code.build === undefined ? '' : `-${createHash('sha256').update(code.build).digest('hex').slice(0, 8)}`
    const dir = join(this.dataDir, 'code', `${service}-${head.oid.slice(0, 12)}${buildKey}`)
    if (!existsSync(dir)) {
      const staging = `${dir}.staging-${process.pid}`
      await rm(staging, { recursive: true, force: true })
      const modes = new Map<string, number>()
      const files = await store.files(head.oid, modes)
      await writeTree(staging, files, modes)
      if (code.build !== undefined) await this.build(service, code.build, staging)
      await rename(staging, dir)
    }
    return { dir, version: `${head.oid.slice(0, 12)}${buildKey}` }
  }

  /** Runs the build command once per commit; its output goes to logs/build-<service>.log. */
  private async build (service: string, command: string, dir: string): Promise<void> {
    const logPath = join(this.dataDir, 'logs', `build-${service}.log`)
    await mkdir(dirname(logPath), { recursive: true })
    const out = await open(logPath, 'a')
    this.log.info(`building ${service}: ${command}`)
    this.onBuild({ service, what: 'started', detail: command })
    try {
      const code = await new Promise<number | string>((resolve) => {
        // The node's own V8 flags (NODE_OPTIONS of an origin-node) are not for the build's npm or tsc.
        const child = spawn('sh', ['-c', command], { cwd: dir, stdio: ['ignore', out.fd, out.fd], env: withoutNodeFlags() })
        child.once('exit', (c, sig) => resolve(c ?? sig ?? 'unknown'))
        child.once('error', (err) => resolve(errorMessage(err)))
      })
      if (code !== 0) {
        const why = `build failed: ${typeof code === 'number' ? `exit ${code}` : code}; see ${logPath}`
        this.onBuild({ service, what: 'failed', detail: why })
        throw new OriginError('E_START_FAILED', why, { service, logPath })
      }
      this.onBuild({ service, what: 'succeeded', detail: logPath })
    } finally {
      await out.close()
    }
  }
}
