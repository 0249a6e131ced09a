/**
 * spec: the cluster's desired state, from git. Hubs fetch the spec repo (on an interval,
 * and at once when poked by `cluster.sync()` or the webhook); every other node takes the
 * commit its hubs run over the mesh, checks each object against its id, and validates it
 * the same way. A commit is applied only if the whole spec validates (and, when signers
 * are configured, is signed by one of them); otherwise the last good spec keeps running
 * and the rejection is kept with its problems for `cluster.spec()`. TS spec files run in a
 * separate process under limits (time, memory, sizes: `SpecLimits`); a version past one is
 * rejected like any other bad one. Rejected versions are remembered in
 * `DATA/spec/rejected.json`, so one is never evaluated again, even after a restart.
 *
 * For local development the source can be a working directory, watched for changes.
 *
 * Three parts, composed here behind the contract (contract.ts): where versions come from
 * (source.ts), how they travel between nodes (distribution.ts), whether one runs
 * (admission.ts).
 *
 * @example
 *   const s = spec({ source: { kind: 'git', url, pollIntervalMs: 3000 }, dataDir })({ transport, membership, hubs, log, cluster })
 *   s.events.on('applied', (applied) => ...)
 */
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { GitStore } from '../git/store'
import { Admission } from './admission'
import type { Applied, Rejection, SpecComponents, SpecEvents, SpecInit, SpecLayer, SyncResult } from './contract'
import { Distribution } from './distribution'
import { specLimits } from './limits'
import { Remote, watchDirectory } from './source'

export type { Applied, Rejection, SpecComponents, SpecError, SpecEvents, SpecInit, SpecLayer, SpecSource, StructuredRejection, SyncResult } from './contract'
export type { Spec } from './load'

export function spec (init: SpecInit) {
  return (c: SpecComponents): SpecLayer => new DesiredState(init, c)
}

class DesiredState implements SpecLayer {
  readonly events = new EventEmitter<SpecEvents>()
  private readonly store: GitStore
  private readonly admission: Admission
  private readonly remote?: Remote
  private readonly distribution: Distribution
  private stopWatching?: () => Promise<void>
  private running = false
  private served = false
  private readonly onMembers = (): void => { this.onViewChange() }

  constructor (private readonly init: SpecInit, private readonly c: SpecComponents) {
    this.store = new GitStore(join(init.dataDir, 'spec.git'))
    const limits = specLimits({ ...init.limits, ...(init.tsTimeoutMs === undefined ? {} : { fileMs: init.tsTimeoutMs }) })
    const src = init.source
    const { store, events } = this
    this.admission = new Admission(
      { dataDir: init.dataDir, limits, signers: src.kind === 'git' ? src.allowedSigners : undefined },
      { store, membership: c.membership, events, log: c.log, cluster: c.cluster, clock: c.clock })
    if (src.kind === 'git') {
      this.remote = new Remote(src, {
        store,
        transport: c.transport,
        events,
        log: c.log,
        membership: c.membership,
        clock: c.clock,
        decided: (commit) => commit === this.admission.current()?.version || commit === this.admission.lastRejected()?.version,
        take: async (commit) => {
          const result = await this.admission.admitCommit(commit)
          if (result.outcome === 'applied') this.distribution.announce(commit)
          return result
        }
      })
    }
    const remote = this.remote
    this.distribution = new Distribution({
      transport: c.transport,
      membership: c.membership,
      hubs: c.hubs,
      store,
      events,
      log: c.log,
      admission: this.admission,
      clock: c.clock,
      remote: remote === undefined ? undefined : { polling: () => remote.polling(), sync: async () => await remote.sync(), catchUp: (announced) => { remote.catchUp(this.hubVersions(announced)) } }
    })
  }

  current (): Applied | undefined { return this.admission.current() }
  lastRejected (): Rejection | undefined { return this.admission.lastRejected() }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    // Put in at the first start, so a layer that was only built answers nothing.
    if (!this.served) {
      this.served = true
      this.distribution.serve()
      this.remote?.serve()
    }
    // Only a git source needs the store: a node without one never loads isomorphic-git.
    if (this.remote !== undefined) await this.store.init()
    await this.admission.loadRemembered()
    const src = this.init.source
    if (src.kind === 'dir') {
      this.stopWatching = await watchDirectory(src.dir, async (candidate) => await this.admission.admit(candidate), this.c.log, this.c.clock)
      return
    }
    await this.admission.resume()
    this.distribution.start()
    this.c.hubs.events.on('change', this.onMembers)
    this.c.membership.events.on('change', this.onMembers)
    this.onViewChange()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.distribution.stop()
    this.c.hubs.events.off('change', this.onMembers)
    this.c.membership.events.off('change', this.onMembers)
    await this.stopWatching?.()
    await this.remote?.stop()
  }

  async sync (): Promise<SyncResult[]> {
    if (this.remote?.polling() === true) return [await this.remote.sync()]
    return await this.distribution.askHubs()
  }

  /** Hubs with a remote poll it; everyone else follows what the hubs run. */
  private onViewChange (): void {
    if (!this.running) return
    const polls = this.remote !== undefined && this.c.hubs.isHub()
    this.remote?.setPolling(polls)
    if (polls) this.remote?.catchUp(this.hubVersions())
    else this.distribution.follow()
  }

  /** The versions the hubs run (and one a hub just announced). */
  private hubVersions (announced?: string): Array<string | undefined> {
    const table = this.c.membership.table()
    const versions = this.c.hubs.current().map((id) => table[id]?.spec)
    return announced === undefined ? versions : [...versions, announced]
  }
}
