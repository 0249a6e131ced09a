/**
 * spec: the cluster's desired state, from git. Hubs fetch the spec repo (on an interval,
 * and at once when poked by `cluster.sync()` or the webhook); every other node takes the
 * commit its hubs run over the mesh, checks each object against its id, and validates it
 * the same way. A commit is applied only if the whole spec validates (and, when signers
 * are configured, is signed by one of them); otherwise the last good spec keeps running
 * and the rejection is kept with its errors for `cluster.spec()`. TS spec files run in a
 * separate process under limits (time, memory, sizes: `SpecLimits`); a version past one is
 * rejected like any other bad one. Rejected versions are remembered in
 * `DATA/spec/rejected.json`, so one is never evaluated again, even after a restart.
 *
 * For local development the source can be a working directory, watched for changes.
 *
 * @example
 *   const s = spec({ source: { kind: 'git', url, pollIntervalMs: 3000 }, dataDir })({ transport, membership, hubs, log, cluster })
 *   s.events.on('applied', (applied) => ...)
 */
import { EventEmitter } from 'node:events'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { OriginError, errorMessage } from '../errors'
import { type CommitInfo, GitStore } from '../git/store'
import { verifyCommitSignature } from './signature'
import { defaultMaxCommitMb, loadSpec, formatSpecError, type Spec, type SpecFiles } from './load'
import { ObjectAssembler, objectPieces, type ObjectPiece } from './transfer'
import { specLimits, type SpecLimits } from './limits'
import { RejectedVersions } from './rejections'
import { watchSpecDir } from './watch'
import { executablesIn } from './modes'
import { webhookHandler } from './webhook'
import { call, serve, stream } from '../protocol/table'
import { mesh } from '../protocol/mesh'
import { followTarget, type Applied } from './state'
import type { Rejection, SpecComponents, SpecEvents, SpecInit, SpecLayer, SyncResult } from './contract'
import type { SpecError } from './types'

export type { Applied, Rejection, SpecComponents, SpecError, SpecEvents, SpecInit, SpecLayer, SpecSource, StructuredRejection, SyncResult } from './contract'
export type { Spec } from './load'

export function spec (init: SpecInit) {
  return (c: SpecComponents): SpecLayer => new GitSpec(init, c)
}

class GitSpec implements SpecLayer {
  readonly events = new EventEmitter<SpecEvents>()
  private readonly store: GitStore
  private applied?: Applied
  private rejected?: Rejection
  private pollTimer?: NodeJS.Timeout
  private stopWatching?: () => Promise<void>
  private syncing?: Promise<SyncResult>
  private syncNext?: Promise<SyncResult>
  private following?: string
  private lastSyncError?: string
  private readonly seenFromHubs = new Set<string>()
  private readonly superseded = new Set<string>()
  private running = false
  private registered = false
  /** Rejected versions, kept in DATA/spec/rejected.json: never evaluated again under the same limits. */
  private readonly remembered: RejectedVersions
  private readonly limits: SpecLimits
  /** Versions are considered one after another, so a slow TS commit cannot be applied after a later one. */
  private considering: Promise<unknown> = Promise.resolve()
  private readonly onMembers = (): void => { this.onViewChange() }

  constructor (private readonly init: SpecInit, private readonly c: SpecComponents) {
    this.store = new GitStore(join(init.dataDir, 'spec.git'))
    this.limits = specLimits({ ...init.limits, ...(init.tsTimeoutMs === undefined ? {} : { fileMs: init.tsTimeoutMs }) })
    this.remembered = new RejectedVersions(join(init.dataDir, 'spec', 'rejected.json'), JSON.stringify(this.limits))
  }

  /** The mesh methods and the webhook: put in at the first start, so a layer that was only built answers nothing. */
  private register (): void {
    if (this.registered) return
    this.registered = true
    const t = this.c.transport
    serve(t, mesh, 'spec.objects', (p) => this.objectBatches(p.commit))
    serve(t, mesh, 'spec.sync', async () => [await this.syncHere()])
    serve(t, mesh, 'spec.announce', (p) => { this.onAnnounce(p.commit, p.from) })
    serve(t, mesh, 'spec.status', () => ({ applied: this.applied?.info, rejected: this.rejected }))
    const src = this.init.source
    if (src.kind === 'git' && src.webhookSecret !== undefined) {
      t.route('POST', '/hooks/git', webhookHandler(src.webhookSecret, async () => { await this.sync() }, this.c.log))
    }
  }

  current (): Applied | undefined { return this.applied }
  lastRejected (): Rejection | undefined { return this.rejected }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    this.register()
    // Only a git source needs the store: a node without one never loads isomorphic-git.
    if (this.init.source.kind === 'git') await this.store.init()
    const unreadable = await this.remembered.load()
    if (unreadable !== undefined) this.c.log.warn(`remembered spec rejections: ${unreadable}`)
    const src = this.init.source
    if (src.kind === 'dir') {
      this.c.log.info(`taking the spec from the directory ${src.dir} (watched; no git)`)
      this.stopWatching = await watchSpecDir(src.dir, (files, version) => {
        void executablesIn(src.dir, files.keys())
          .then(async (modes) => await this.consider(version, files, { dir: src.dir }, modes))
          .catch((err) => this.c.log.warn(`cannot take the spec directory's version ${version}: ${errorMessage(err)}`))
      }, this.c.log)
      return
    }
    await this.resumeLastApplied()
    this.c.hubs.events.on('change', this.onMembers)
    this.c.membership.events.on('change', this.onMembers)
    this.onViewChange()
  }

  private get lastAppliedFile (): string { return join(this.init.dataDir, 'spec', 'applied') }

  /**
   * A restarted node runs the commit it ran before at once, from its own store: it does not
   * wait for the remote or the hubs, and a remote whose head is a rejected commit (or down)
   * does not leave it with no spec at all. Newer commits follow as usual.
   */
  private async resumeLastApplied (): Promise<void> {
    const last = (await readFile(this.lastAppliedFile, 'utf8').catch(() => '')).trim()
    if (!/^[0-9a-f]{40}$/.test(last) || !await this.store.has(last)) return
    const result = await this.considerCommit(last).catch((err) => ({ outcome: 'failed', error: errorMessage(err) }))
    if (result.outcome === 'applied') this.c.log.info(`resumed the spec this node ran before (${short(last)}) while it looks for newer ones`)
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    clearInterval(this.pollTimer)
    this.pollTimer = undefined
    clearTimeout(this.followTimer)
    this.followTimer = undefined
    this.c.hubs.events.off('change', this.onMembers)
    this.c.membership.events.off('change', this.onMembers)
    await this.stopWatching?.()
    await this.syncing?.catch(() => {})
  }

  /** Hubs with a remote poll it; everyone else follows what the hubs run. */
  private onViewChange (): void {
    if (!this.running) return
    const polls = this.init.source.kind === 'git' && this.c.hubs.isHub()
    if (polls && this.pollTimer === undefined && this.init.source.kind === 'git') {
      this.c.log.info(`this node is a hub: fetching the spec from ${this.init.source.url} every ${this.init.source.pollIntervalMs} ms`)
      // Jittered (±20 %), so hubs that became hubs together do not poll together.
      const every = Math.round(this.init.source.pollIntervalMs * (0.8 + 0.4 * Math.random()))
      this.pollTimer = setInterval(() => { void this.syncHere() }, every)
      void this.syncHere()
    } else if (!polls && this.pollTimer !== undefined) {
      clearInterval(this.pollTimer)
      this.pollTimer = undefined
      this.c.log.info('no longer a hub: following the hubs\' spec instead of the remote')
    }
    if (!polls) this.follow()
    else this.catchUpWithHubs()
  }

  /** Another hub runs a commit this one has not seen (it was poked first): look at the remote now. */
  private catchUpWithHubs (announced?: string): void {
    const table = this.c.membership.table()
    const versions = this.c.hubs.current().map((id) => table[id]?.spec)
    if (announced !== undefined) versions.push(announced)
    for (const v of versions) {
      if (v === undefined || v.startsWith('dir:') || v === this.applied?.version || v === this.rejected?.version || this.seenFromHubs.has(v)) continue
      this.seenFromHubs.add(v)
      void this.syncHere()
    }
  }

  async sync (): Promise<SyncResult[]> {
    if (this.pollTimer !== undefined) return [await this.syncHere()]
    const hubs = Object.values(this.c.membership.table()).filter((m) => this.c.hubs.current().includes(m.id) && m.id !== this.c.membership.id)
    const results = await Promise.all(hubs.map(async (h) => {
      try {
        const conn = await this.c.transport.peer(h.address)
        return await call(conn, mesh, 'spec.sync', undefined, { timeoutMs: 30_000 })
      } catch (err) {
        return [{ node: h.id, outcome: 'failed' as const, error: errorMessage(err) }]
      }
    }))
    return results.flat()
  }

  /**
   * One sync with the remote at a time. A poke during one (a webhook for a push that sync
   * may have just missed) gets one more sync after it; further pokes share that one.
   */
  private async syncHere (): Promise<SyncResult> {
    if (this.syncing !== undefined) {
      this.syncNext ??= this.syncing.catch(() => undefined).then(async () => { this.syncNext = undefined; return await this.syncHere() })
      return await this.syncNext
    }
    this.syncing = this.fetchAndConsider().finally(() => { this.syncing = undefined })
    return await this.syncing
  }

  private async fetchAndConsider (): Promise<SyncResult> {
    const node = this.c.membership.id
    const src = this.init.source
    if (src.kind !== 'git') return { node, outcome: 'failed', error: 'this node has no git remote' }
    const remote = { url: src.url, ref: src.ref, token: src.token, userAgent: `origin-node/${node}` }
    try {
      const head = await this.store.remoteHead(remote)
      if (this.lastSyncError !== undefined) this.c.log.info(`the spec remote ${src.url} answers again`)
      this.lastSyncError = undefined
      if (head.oid === this.applied?.version || head.oid === this.rejected?.version) {
        return { node, outcome: 'unchanged', commit: head.oid }
      }
      if (!await this.store.has(head.oid)) {
        const fetched = await this.store.fetch(remote, head.ref)
        this.c.log.info(`fetched ${short(fetched)} (${head.ref}) from ${src.url}`)
        this.events.emit('fetched', { version: fetched, from: src.url })
      }
      const result = await this.considerCommit(head.oid)
      if (result.outcome === 'applied') this.announce(head.oid)
      return { node, ...result }
    } catch (err) {
      const error = errorMessage(err)
      // Said once per distinct failure, not on every poll.
      if (error !== this.lastSyncError) this.c.log.warn(`cannot sync the spec from ${src.url}: ${error}`)
      this.lastSyncError = error
      return { node, outcome: 'failed', error }
    }
  }

  /** A hub applied a new commit and says so directly, so nobody waits for gossip. */
  private onAnnounce (commit: string, from: string): void {
    if (!this.running || this.init.source.kind === 'dir' || commit === this.applied?.version) return
    // A hub takes it from the announcing hub too (every object is checked against its id),
    // rather than asking the remote again: one fetch from the remote per change, not one per hub.
    const hub = this.c.membership.table()[from]
    if (hub !== undefined) this.follow({ commit, hub: from, address: hub.address })
    else if (this.pollTimer !== undefined) this.catchUpWithHubs(commit)
  }

  /** Tell every other live member that this hub now runs `commit`. */
  private announce (commit: string): void {
    const self = this.c.membership.id
    for (const m of Object.values(this.c.membership.table())) {
      if (m.id === self || m.status !== 'alive') continue
      void this.c.transport.peer(m.address)
        .then(async (conn) => await call(conn, mesh, 'spec.announce', { commit, from: self }, { timeoutMs: 2000 }))
        .catch((err) => this.c.log.debug(`cannot announce ${short(commit)} to ${m.id}: ${errorMessage(err)}`))
    }
  }

  /** Failed attempts to take a commit from a hub: retried with backoff, not in a loop. */
  private readonly followFailures = new Map<string, { count: number, retryAt: number }>()
  private followTimer?: NodeJS.Timeout

  /** The largest commit this node takes: the applied spec says (its value judges the next one). */
  private get maxCommitBytes (): number {
    return (this.applied?.spec.cluster.maxCommitMb ?? defaultMaxCommitMb) * 2 ** 20
  }

  /** Take the commit the hubs run, from a hub, over the mesh. */
  private follow (explicit?: { commit: string, hub: string, address: string }): void {
    const target = explicit ?? followTarget(this.c.membership.table(), this.c.hubs.current(), this.c.membership.id)
    if (target === undefined || target.commit === this.applied?.version || target.commit === this.rejected?.version) return
    // Gossip can still show a hub on the version this node just left: never go back to one
    // on gossip alone (a hub that really goes back announces it).
    if (explicit === undefined && this.superseded.has(target.commit)) return
    if (this.following === target.commit) return
    const failed = this.followFailures.get(target.commit)
    if (failed !== undefined && Date.now() < failed.retryAt) {
      if (this.followTimer === undefined) {
        this.followTimer = setTimeout(() => { this.followTimer = undefined; if (this.running) this.follow() }, failed.retryAt - Date.now())
        this.followTimer.unref()
      }
      return
    }
    this.following = target.commit
    void (async () => {
      try {
        if (!await this.store.has(target.commit)) {
          const conn = await this.c.transport.peer(target.address)
          const assembler = new ObjectAssembler(this.maxCommitBytes)
          for await (const batch of stream(conn, mesh, 'spec.objects', { commit: target.commit })) for (const piece of batch) assembler.add(piece)
          await this.store.importObjects(target.commit, assembler.objects().map((o) => ({ ...o, data: Buffer.from(o.data) })))
          this.c.log.info(`received ${short(target.commit)} from hub ${target.hub} (every object checked against its id)`)
          this.events.emit('fetched', { version: target.commit, from: `hub ${target.hub}` })
        }
        this.followFailures.delete(target.commit)
        await this.considerCommit(target.commit)
      } catch (err) {
        const count = (this.followFailures.get(target.commit)?.count ?? 0) + 1
        const delay = Math.min(500 * 2 ** (count - 1), 60_000)
        this.followFailures.set(target.commit, { count, retryAt: Date.now() + delay })
        // Bounded: only the commits the hubs ran lately are remembered.
        if (this.followFailures.size > 16) this.followFailures.delete(this.followFailures.keys().next().value as string)
        this.c.log.warn(`cannot take spec ${short(target.commit)} from hub ${target.hub} (attempt ${count}; next in ${(delay / 1000).toFixed(1)} s): ${errorMessage(err)}`)
      } finally {
        this.following = undefined
      }
      this.follow() // the hubs may have moved on meanwhile
    })()
  }

  private async * objectBatches (commit: string): AsyncIterable<ObjectPiece[]> {
    if (commit !== this.applied?.version) throw new OriginError('E_NOT_FOUND', `this node does not run ${short(commit)}`)
    yield * objectPieces(await this.store.objectsOf(commit))
  }

  private async considerCommit (commit: string): Promise<Omit<SyncResult, 'node'>> {
    const info = await this.store.info(commit)
    const src = this.init.source
    const signers = src.kind === 'git' ? src.allowedSigners : undefined
    if (signers !== undefined && signers.length > 0) {
      const check = verifyCommitSignature(await this.store.rawCommit(commit), signers)
      if (!check.ok) return await this.reject(commit, info, [noFile(`commit ${short(commit)}: ${check.reason}`)])
    }
    const modes = new Map<string, number>()
    let files: SpecFiles
    try {
      files = await this.store.files(commit, modes, this.maxCommitBytes)
    } catch (err) {
      if (err instanceof OriginError && err.code === 'E_SPEC_INVALID') return await this.reject(commit, info, [noFile(errorMessage(err))], true)
      throw err
    }
    return await this.consider(commit, files, info, modes)
  }

  private async consider (version: string, files: SpecFiles, info: CommitInfo | { dir: string }, modes: Map<string, number>): Promise<Omit<SyncResult, 'node'>> {
    const turn = this.considering.then(async () => await this.considerNow(version, files, info, modes))
    this.considering = turn.catch(() => {})
    return await turn
  }

  private async considerNow (version: string, files: SpecFiles, info: CommitInfo | { dir: string }, modes: Map<string, number>): Promise<Omit<SyncResult, 'node'>> {
    if (version === this.applied?.version) return { outcome: 'unchanged', commit: version }
    const remembered = this.remembered.get(version)
    if (remembered !== undefined) {
      this.c.log.info(`spec ${short(version)} was rejected before (${new Date(remembered.at).toISOString()}): rejected again from memory, not evaluated again`)
      return await this.reject(version, info, remembered.errors.map(noFile))
    }
    let loaded
    try {
      loaded = await loadSpec(files, { limits: this.limits, onEvaluate: (ts) => this.c.log.debug(`evaluating ${ts.length} TS spec file(s) of ${short(version)} in a separate process`) })
    } catch (err) {
      // The evaluator could not run at all: not the spec's fault, so it is neither rejected nor remembered.
      this.c.log.warn(`cannot evaluate spec ${short(version)}: ${errorMessage(err)}`)
      return { outcome: 'failed', commit: version, error: errorMessage(err) }
    }
    if (!loaded.ok) return await this.reject(version, info, loaded.errors, true)
    if (loaded.spec.cluster.name !== this.c.cluster) {
      return await this.reject(version, info, [{ file: 'cluster.json', message: `name "${loaded.spec.cluster.name}" is not this cluster ("${this.c.cluster}")` }], true)
    }
    return this.apply(version, loaded.spec, files, info, modes)
  }

  private apply (version: string, s: Spec, files: SpecFiles, info: CommitInfo | { dir: string }, modes: Map<string, number>): Omit<SyncResult, 'node'> {
    if (this.applied !== undefined) this.superseded.add(this.applied.version)
    this.superseded.delete(version)
    this.applied = { version, spec: s, files, modes, info: describe(version, info), appliedAt: Date.now() }
    this.c.membership.setSpec(version)
    if (!version.startsWith('dir:')) {
      void mkdir(dirname(this.lastAppliedFile), { recursive: true }).then(async () => await writeFile(this.lastAppliedFile, version + '\n'))
        .catch((err) => this.c.log.warn(`cannot record the applied spec: ${errorMessage(err)}`))
    }
    this.c.log.info(`applied spec ${describeLine(this.applied.info)}: ${Object.keys(s.services).length} services, minNodes ${s.cluster.minNodes}`)
    this.events.emit('applied', this.applied)
    return { outcome: 'applied', commit: version }
  }

  /** `remember`: the files themselves are bad, so the verdict is kept across restarts. */
  private async reject (version: string, info: CommitInfo | { dir: string }, problems: SpecError[], remember = false): Promise<Omit<SyncResult, 'node'>> {
    const errors = problems.map((e) => e.file === '' ? e.message : formatSpecError(e))
    this.rejected = { version, info: describe(version, info), errors, problems, at: Date.now() }
    const keeping = this.applied === undefined ? 'no spec was applied before' : `keeping ${short(this.applied.version)}`
    this.c.log.warn(`rejected spec ${describeLine(this.rejected.info)} (${keeping}):\n  ${errors.join('\n  ')}`)
    this.events.emit('rejected', this.rejected)
    if (remember) {
      const problem = await this.remembered.add(version, errors)
      if (problem !== undefined) this.c.log.warn(`cannot remember the rejection of ${short(version)}: ${problem}`)
    }
    return { outcome: 'rejected', commit: version, errors, problems }
  }
}

function short (version: string): string {
  return version.startsWith('dir:') ? version : version.slice(0, 12)
}

function describe (version: string, info: CommitInfo | { dir: string }): CommitInfo {
  return 'dir' in info ? { id: version, author: '(local directory)', date: new Date().toISOString(), message: info.dir } : info
}

function describeLine (info: CommitInfo): string {
  return `${short(info.id)} "${info.message.split('\n')[0]}" by ${info.author}`
}

/** A problem that is no file's (a signature, a size), or remembered as a line only: its message as is. */
function noFile (message: string): SpecError {
  return { file: '', message }
}
