/**
 * Code for what the plan may start, and pruning what nothing runs: each assigned
 * instance's code tree (code.ts) and, for a container service, its image on this node's
 * engine. What cannot be had yet comes back as the words the plan waits with and when to
 * try again, not as a throw.
 */
import { join } from 'node:path'
import type { Applied } from '../desired'
import type { ServiceSpec } from '../desired/types'
import { errorMessage } from '../errors'
import type { ImageRuntime } from '../runtime/contract'
import type { Assignment } from '../scheduler'
import type { CodeCache } from './code'
import { serviceVersion } from './version'

/** What plan.ts is told about an instance's code: the version it would run, or why not (and when to look again). */
export type Wanted = { version: string } | { error: string, retryAt?: number }

/** A prepared code tree and, for a container service, its image. */
export interface PreparedRun { dir: string, image?: string }

export class CodePreparer {
  /** The spec version and code trees in use when unused trees were last pruned. */
  private prunedFor = ''

  constructor (private readonly code: CodeCache, private readonly engine: ImageRuntime) {}

  /** The code (and image) `a` would run under `applied`, or why it cannot have it yet. */
  async prepare (a: Assignment, svc: ServiceSpec, applied: Pick<Applied, 'version' | 'files' | 'modes'>): Promise<{ wanted: Wanted, run?: PreparedRun }> {
    try {
      const prepared = await this.code.prepare(a.service, svc, applied)
      // An image's build context and tarballs: the service's own folder of the spec repo, or the root of its code repo.
      const image = svc.run.image === undefined ? undefined : await this.imageFor(a.service, svc.run.image, svc.code === undefined ? join(prepared.dir, 'services', a.service) : prepared.dir, prepared.version)
      return { wanted: { version: serviceVersion(svc, prepared.version) }, run: { dir: prepared.dir, image } }
    } catch (err) {
      const retries = [this.code.nextRetry(), this.engine.nextRetry()].filter((t): t is number => t !== undefined)
      return { wanted: { error: errorMessage(err), ...(retries.length === 0 ? {} : { retryAt: Math.min(...retries) }) } }
    }
  }

  /** Forget what older spec versions prepared (their trees stay while instances run them). */
  keepOnly (specVersion: string): void {
    this.code.keepOnly(specVersion)
  }

  /**
   * Removes code trees nothing runs, only when what runs changed: reconcile also runs on a
   * clock while a singleton is held, and a scan of the code dir each time is for nothing.
   */
  async pruneUnused (specVersion: string, codeDirs: Iterable<string>): Promise<void> {
    const inUse = [...new Set(codeDirs)].sort()
    const key = `${specVersion}\n${inUse.join('\n')}`
    if (key === this.prunedFor) return
    this.prunedFor = key
    await this.code.prune(new Set(inUse))
  }

  /** A container service's image, ready on this node's engine; throws, in words, when there is no engine or no image. */
  private async imageFor (service: string, spec: NonNullable<ServiceSpec['run']['image']>, codeDir: string, codeVersion: string): Promise<string> {
    const e = await this.engine.connect()
    if ('reason' in e) throw new Error(`cannot run container service ${service} on this node: ${e.reason}`)
    return await this.engine.image(service, spec, codeDir, codeVersion)
  }
}
