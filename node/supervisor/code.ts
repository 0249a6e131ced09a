/**
 * Where a service's code comes from, on disk: the spec repo itself (the files of the
 * applied spec version, written once per version), or another git repo + ref fetched with
 * isomorphic-git into the data dir, with an optional build command run once per commit.
 * Each prepared tree is written to a temp dir and renamed into place, so a half-written
 * tree is never run.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import { GitStore } from '../git/store'
import type { Logger } from '../log'
import type { ServiceSpec } from '../spec/types'

export interface PreparedCode {
  /** Directory the service runs in (before `run.cwd`). */
  dir: string
  /** Identifies the code: changes when the code does. */
  version: string
}

/** Spec files that describe the cluster rather than being code a service runs. */
function isSpecFile (path: string): boolean {
  return /^(cluster\.(json|ts)|services\/[^/]+\.(json|ts)|ops\/.*|plugins\/.*|README[^/]*)$/.test(path)
}

/** A digest of the code part of a spec version: editing one service's spec file does not restart the others. */
export function specCodeDigest (files: Map<string, Buffer>): string {
  const h = createHash('sha256')
  for (const path of [...files.keys()].filter((p) => !isSpecFile(p)).sort()) {
    h.update(path).update('\0').update(files.get(path) as Buffer).update('\0')
  }
  return h.digest('hex').slice(0, 16)
}

async function writeTree (target: string, files: Map<string, Buffer>): Promise<void> {
  if (existsSync(target)) return
  const tmp = `${target}.tmp-${process.pid}-${Date.now()}`
  for (const [path, content] of files) {
    const file = join(tmp, path)
    if (!file.startsWith(tmp + '/')) throw new OriginError('E_SPEC_INVALID', `refusing to write ${path} outside the code directory`)
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, content)
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

  constructor (private readonly dataDir: string, private readonly nodeId: string, private readonly log: Logger) {}

  /**
   * The code for `service` under spec version `specVersion`, prepared once; concurrent
   * callers share the work, and a failure is forgotten so the next reconcile tries again.
   * A `code.ref` that names a branch is resolved when the spec version is first seen: to
   * deploy new app code, change the spec (or pin a commit), as with an image tag.
   */
  async prepare (service: string, svc: ServiceSpec, specVersion: string, specFiles: Map<string, Buffer>): Promise<PreparedCode> {
    const key = `${specVersion}:${service}`
    let p = this.prepared.get(key)
    if (p === undefined) {
      p = svc.code === undefined ? this.fromSpec(specFiles) : this.fromRepo(service, svc.code)
      this.prepared.set(key, p)
      p.catch(() => { if (this.prepared.get(key) === p) this.prepared.delete(key) })
    }
    return await p
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

  private async fromSpec (files: Map<string, Buffer>): Promise<PreparedCode> {
    const version = specCodeDigest(files)
    const dir = join(this.dataDir, 'code', `spec-${version}`)
    await writeTree(dir, files)
    return { dir, version: `spec-${version}` }
  }

  private async fromRepo (service: string, code: NonNullable<ServiceSpec['code']>): Promise<PreparedCode> {
    const repoKey = createHash('sha256').update(code.repo).digest('hex').slice(0, 12)
    const store = new GitStore(join(this.dataDir, 'code', 'repos', `${repoKey}.git`))
    await store.init()
    const remote = { url: code.repo, ref: code.ref, userAgent: `origin-node/${this.nodeId}` }
    const head = await store.remoteHead(remote)
    if (!await store.has(head.oid)) await store.fetch(remote, head.ref)
    const buildKey = code.build === undefined ? '' : `-${createHash('sha256').update(code.build).digest('hex').slice(0, 8)}`
    const dir = join(this.dataDir, 'code', `${service}-${head.oid.slice(0, 12)}${buildKey}`)
    if (!existsSync(dir)) {
      const staging = `${dir}.staging-${process.pid}`
      await rm(staging, { recursive: true, force: true })
      await writeTree(staging, await store.files(head.oid))
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
    try {
      const code = await new Promise<number | string>((resolve) => {
        const child = spawn('sh', ['-c', command], { cwd: dir, stdio: ['ignore', out.fd, out.fd] })
        child.once('exit', (c, sig) => resolve(c ?? sig ?? 'unknown'))
        child.once('error', (err) => resolve(errorMessage(err)))
      })
      if (code !== 0) throw new OriginError('E_START_FAILED', `build of ${service} failed (${typeof code === 'number' ? `exit ${code}` : code}); see ${logPath}`, { service })
    } finally {
      await out.close()
    }
  }
}
