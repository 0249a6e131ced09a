/**
 * Admission: whether a version of the spec runs. The decision is `judge` (and the pure
 * checks it is made of): a version's files → apply, or reject with structured problems,
 * or fail (the evaluator could not run: not the version's fault). `Admission` holds what
 * was decided — the applied version, the last rejection, the rejections remembered across
 * restarts (rejections.ts), the version to resume after one — and is the only place that
 * says so to the rest of the node (membership's spec field, the layer's events).
 *
 * Where versions come from is source.ts (the remote, a directory) and distribution.ts
 * (another node); both hand them here, one at a time.
 */
import type { EventEmitter } from 'node:events'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { isoTime, systemClock, type Clock } from '../clock'
import { OriginError, errorMessage } from '../errors'
import type { CommitInfo, GitStore } from '../git/store'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { Applied, Rejection, SpecEvents, SyncResult } from './contract'
import type { SpecLimits } from './limits'
import { defaultMaxCommitMb, loadSpec, type Spec, type SpecFiles } from './load'
import { noFile, problemLine } from './problems'
import { RejectedVersions, type RememberedRejection } from './rejections'
import { verifyCommitSignature } from './signature'
import type { SpecError } from './types'

/** What one node did with one version (a sync result without the node). */
export type Outcome = Omit<SyncResult, 'node'>

/** A version to judge: its files, where it came from, its file modes. */
export interface Candidate { version: string, files: SpecFiles, info: CommitInfo | { dir: string }, modes: Map<string, number> }

export type Decision =
  | { verdict: 'apply', spec: Spec }
  /** `remember`: the files themselves are bad, so the verdict holds across restarts. */
  | { verdict: 'reject', problems: SpecError[], remember: boolean, remembered?: RememberedRejection }
  | { verdict: 'fail', error: string }

/** A commit's signature problem, if signers are set and none of them signed it. Pure. */
export function signatureProblems (commit: string, raw: Buffer | string, signers: string[] | undefined): SpecError[] {
  if (signers === undefined || signers.length === 0) return []
  const check = verifyCommitSignature(raw, signers)
  return check.ok ? [] : [noFile(`commit ${short(commit)}: ${check.reason}`)]
}

/** A spec naming another cluster is refused. Pure. */
export function clusterProblems (s: Spec, cluster: string): SpecError[] {
  return s.cluster.name === cluster ? [] : [{ file: 'cluster.json', message: `name "${s.cluster.name}" is not this cluster ("${cluster}")` }]
}

export interface JudgeOptions {
  limits: SpecLimits
  cluster: string
  /** This version's remembered rejection, if any: the verdict then, with no evaluation. */
  remembered?: RememberedRejection
  onEvaluate?: (tsFiles: string[]) => void
}

/** The verdict on a version's files. Its one effect: TS spec files are evaluated in a separate process. */
export async function judge (c: Candidate, o: JudgeOptions): Promise<Decision> {
  if (o.remembered !== undefined) return { verdict: 'reject', problems: o.remembered.problems, remember: false, remembered: o.remembered }
  let loaded
  try {
    loaded = await loadSpec(c.files, { limits: o.limits, onEvaluate: o.onEvaluate })
  } catch (err) {
    return { verdict: 'fail', error: errorMessage(err) }
  }
  if (!loaded.ok) return { verdict: 'reject', problems: loaded.errors, remember: true }
  const other = clusterProblems(loaded.spec, o.cluster)
  return other.length > 0 ? { verdict: 'reject', problems: other, remember: true } : { verdict: 'apply', spec: loaded.spec }
}

export interface AdmissionInit { dataDir: string, limits: SpecLimits, signers?: string[] }
export interface AdmissionComponents {
  store: Pick<GitStore, 'has' | 'info' | 'rawCommit' | 'files'>
  membership: Pick<Membership, 'setSpec'>
  events: EventEmitter<SpecEvents>
  log: Logger
  cluster: string
  /** When a version was applied or rejected, as the cluster records it. @default systemClock */
  clock?: Clock
}

export class Admission {
  private applied?: Applied
  private rejected?: Rejection
  private readonly remembered: RejectedVersions
  private readonly lastAppliedFile: string
  /** Versions this node applied and then replaced. */
  private readonly replaced = new Set<string>()
  /** Versions are judged one after another, so a slow TS commit cannot be applied after a later one. */
  private judging: Promise<unknown> = Promise.resolve()
  private readonly clock: Clock

  constructor (private readonly init: AdmissionInit, private readonly c: AdmissionComponents) {
    this.clock = c.clock ?? systemClock
    this.remembered = new RejectedVersions(join(init.dataDir, 'spec', 'rejected.json'), JSON.stringify(init.limits))
    this.lastAppliedFile = join(init.dataDir, 'spec', 'applied')
  }

  current (): Applied | undefined { return this.applied }
  lastRejected (): Rejection | undefined { return this.rejected }
  /** The largest commit this node takes: the applied spec says (its value judges the next one). */
  maxCommitBytes (): number { return (this.applied?.spec.cluster.maxCommitMb ?? defaultMaxCommitMb) * 2 ** 20 }
  /** Whether this node ran `version` and has left it for another since. */
  left (version: string): boolean { return this.replaced.has(version) }

  async loadRemembered (): Promise<void> {
    const unreadable = await this.remembered.load()
    if (unreadable !== undefined) this.c.log.warn(`remembered spec rejections: ${unreadable}`)
  }

  /**
   * A restarted node runs the commit it ran before at once, from its own store: it does not
   * wait for the remote or the hubs, and a remote whose head is a rejected commit (or down)
   * does not leave it with no spec at all. Newer commits follow as usual.
   */
  async resume (): Promise<void> {
    const last = (await readFile(this.lastAppliedFile, 'utf8').catch(() => '')).trim()
    if (!/^[0-9a-f]{40}$/.test(last) || !await this.c.store.has(last)) return
    const result = await this.admitCommit(last).catch((err) => ({ outcome: 'failed', error: errorMessage(err) }))
    if (result.outcome === 'applied') this.c.log.info(`resumed the spec this node ran before (${short(last)}) while it looks for newer ones`)
  }

  /** A commit in the store: its signature and size are checked before its files are judged. */
  async admitCommit (commit: string): Promise<Outcome> {
    const info = await this.c.store.info(commit)
    const signers = this.init.signers ?? []
    const unsigned = signers.length === 0 ? [] : signatureProblems(commit, await this.c.store.rawCommit(commit), signers)
    if (unsigned.length > 0) return await this.reject({ version: commit, info }, unsigned, false)
    const modes = new Map<string, number>()
    let files: SpecFiles
    try {
      files = await this.c.store.files(commit, modes, this.maxCommitBytes())
    } catch (err) {
      if (err instanceof OriginError && err.code === 'E_SPEC_INVALID') return await this.reject({ version: commit, info }, [noFile(errorMessage(err))], true)
      throw err
    }
    return await this.admit({ version: commit, files, info, modes })
  }

  /** A version's files, judged after the versions handed in before it. */
  async admit (c: Candidate): Promise<Outcome> {
    const turn = this.judging.then(async () => await this.admitNow(c))
    this.judging = turn.catch(() => {})
    return await turn
  }

  private async admitNow (c: Candidate): Promise<Outcome> {
    if (c.version === this.applied?.version) return { outcome: 'unchanged', commit: c.version }
    const d = await judge(c, {
      limits: this.init.limits,
      cluster: this.c.cluster,
      remembered: this.remembered.get(c.version),
      onEvaluate: (ts) => this.c.log.debug(`evaluating ${ts.length} TS spec file(s) of ${short(c.version)} in a separate process`)
    })
    if (d.verdict === 'fail') {
      // The evaluator could not run at all: not the spec's fault, so it is neither rejected nor remembered.
      this.c.log.warn(`cannot evaluate spec ${short(c.version)}: ${d.error}`)
      return { outcome: 'failed', commit: c.version, error: d.error }
    }
    if (d.verdict === 'apply') return this.apply(c, d.spec)
    if (d.remembered !== undefined) this.c.log.info(`spec ${short(c.version)} was rejected before (${isoTime(d.remembered.at)}): rejected again from memory, not evaluated again`)
    return await this.reject(c, d.problems, d.remember)
  }

  private apply (c: Candidate, s: Spec): Outcome {
    // Before anyone hears of the new version (setSpec below says so to membership, whose
    // listeners may look for a version to follow at once), the one it replaces is left.
    if (this.applied !== undefined) this.replaced.add(this.applied.version)
    this.replaced.delete(c.version)
    const now = this.clock.now()
    this.applied = { version: c.version, spec: s, files: c.files, modes: c.modes, info: describe(c.version, c.info, now), appliedAt: now }
    this.c.membership.setSpec(c.version)
    if (!c.version.startsWith('dir:')) {
      void mkdir(dirname(this.lastAppliedFile), { recursive: true }).then(async () => await writeFile(this.lastAppliedFile, c.version + '\n'))
        .catch((err) => this.c.log.warn(`cannot record the applied spec: ${errorMessage(err)}`))
    }
    this.c.log.info(`applied spec ${describeLine(this.applied.info)}: ${Object.keys(s.services).length} services, minNodes ${s.cluster.minNodes}`)
    this.c.events.emit('applied', this.applied)
    return { outcome: 'applied', commit: c.version }
  }

  private async reject (c: Pick<Candidate, 'version' | 'info'>, problems: SpecError[], remember: boolean): Promise<Outcome> {
    const errors = problems.map(problemLine)
    const now = this.clock.now()
    this.rejected = { version: c.version, info: describe(c.version, c.info, now), errors, problems, at: now }
    const keeping = this.applied === undefined ? 'no spec was applied before' : `keeping ${short(this.applied.version)}`
    this.c.log.warn(`rejected spec ${describeLine(this.rejected.info)} (${keeping}):\n  ${errors.join('\n  ')}`)
    this.c.events.emit('rejected', this.rejected)
    if (remember) {
      const problem = await this.remembered.add(c.version, problems, this.rejected.at)
      if (problem !== undefined) this.c.log.warn(`cannot remember the rejection of ${short(c.version)}: ${problem}`)
    }
    return { outcome: 'rejected', commit: c.version, errors, problems }
  }
}

export function short (version: string): string {
  return version.startsWith('dir:') ? version : version.slice(0, 12)
}

/** A directory's version has no commit date: `now` stands for it. */
function describe (version: string, info: CommitInfo | { dir: string }, now: number): CommitInfo {
  return 'dir' in info ? { id: version, author: '(local directory)', date: isoTime(now), message: info.dir } : info
}

function describeLine (info: CommitInfo): string {
  return `${short(info.id)} "${info.message.split('\n')[0]}" by ${info.author}`
}
