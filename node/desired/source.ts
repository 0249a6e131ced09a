/**
 * Source: where new versions of the spec come from on this node. A hub with a git remote
 * polls it (a jittered interval) and looks at once when poked: `cluster.sync()`, the push
 * webhook, or another hub running a commit this one has not seen. A node given a directory
 * watches it instead. Each new version is handed on ("here is commit X") to be admitted,
 * and what came of it is the sync's result.
 *
 * Nodes without a remote get their versions from the hubs: distribution.ts.
 */
import type { EventEmitter } from 'node:events'
import { systemClock, type Clock, type Timer } from '../clock'
import { errorMessage } from '../errors'
import type { GitStore } from '../git/store'
import type { Logger } from '../log'
import type { Membership } from '../membership'
import type { Transport } from '../transport/types'
import type { Candidate, Outcome } from './admission'
import { short } from './admission'
import type { SpecEvents, SpecSource, SyncResult } from './contract'
import { executablesIn } from './modes'
import { watchSpecDir } from './watch'
import { webhookHandler } from './webhook'

export type GitSource = Extract<SpecSource, { kind: 'git' }>

export interface RemoteComponents {
  store: Pick<GitStore, 'remoteHead' | 'has' | 'fetch'>
  transport: Pick<Transport, 'route'>
  events: EventEmitter<SpecEvents>
  log: Logger
  membership: Pick<Membership, 'id'>
  /** Whether this node already applied or rejected `commit`: then it is not handed on again. */
  decided: (commit: string) => boolean
  /** Here is commit X, in the store now: admit it. */
  take: (commit: string) => Promise<Outcome>
  /** What the poll interval is measured on. @default systemClock */
  clock?: Clock
}

/** A git remote, polled while this node is a hub. */
export class Remote {
  private timer?: Timer
  private syncing?: Promise<SyncResult>
  private syncNext?: Promise<SyncResult>
  private lastError?: string
  /** Commits other hubs ran that made this one look at the remote: once each. */
  private readonly seenFromHubs = new Set<string>()

  constructor (private readonly src: GitSource, private readonly c: RemoteComponents) {}

  /** The push webhook, when a secret is set. */
  serve (): void {
    if (this.src.webhookSecret === undefined) return
    this.c.transport.route('POST', '/hooks/git', webhookHandler(this.src.webhookSecret, async () => { await this.sync() }, this.c.log))
  }

  polling (): boolean { return this.timer !== undefined }

  /** Poll while this node is a hub; stop when it is no longer one. */
  setPolling (on: boolean): void {
    if (on && this.timer === undefined) {
      this.c.log.info(`this node is a hub: fetching the spec from ${this.src.url} every ${this.src.pollIntervalMs} ms`)
      // Jittered (±20 %), so hubs that became hubs together do not poll together.
      const every = Math.round(this.src.pollIntervalMs * (0.8 + 0.4 * Math.random()))
      this.timer = (this.c.clock ?? systemClock).every(every, () => { void this.sync() })
      void this.sync()
    } else if (!on && this.timer !== undefined) {
      this.timer.cancel()
      this.timer = undefined
      this.c.log.info('no longer a hub: following the hubs\' spec instead of the remote')
    }
  }

  /** Other hubs run these versions (one was poked first): look at the remote for any this node has not decided on. */
  catchUp (versions: Array<string | undefined>): void {
    for (const v of versions) {
      if (v === undefined || v.startsWith('dir:') || this.c.decided(v) || this.seenFromHubs.has(v)) continue
      this.seenFromHubs.add(v)
      void this.sync()
    }
  }

  /**
   * One sync with the remote at a time. A poke during one (a webhook for a push that sync
   * may have just missed) gets one more sync after it; further pokes share that one.
   */
  async sync (): Promise<SyncResult> {
    if (this.syncing !== undefined) {
      this.syncNext ??= this.syncing.catch(() => undefined).then(async () => { this.syncNext = undefined; return await this.sync() })
      return await this.syncNext
    }
    this.syncing = this.fetchAndTake().finally(() => { this.syncing = undefined })
    return await this.syncing
  }

  async stop (): Promise<void> {
    this.timer?.cancel()
    this.timer = undefined
    await this.syncing?.catch(() => {})
  }

  private async fetchAndTake (): Promise<SyncResult> {
    const node = this.c.membership.id
    const remote = { url: this.src.url, ref: this.src.ref, token: this.src.token, userAgent: `origin-node/${node}` }
    try {
      const head = await this.c.store.remoteHead(remote)
      if (this.lastError !== undefined) this.c.log.info(`the spec remote ${this.src.url} answers again`)
      this.lastError = undefined
      if (this.c.decided(head.oid)) return { node, outcome: 'unchanged', commit: head.oid }
      if (!await this.c.store.has(head.oid)) {
        const fetched = await this.c.store.fetch(remote, head.ref)
        this.c.log.info(`fetched ${short(fetched)} (${head.ref}) from ${this.src.url}`)
        this.c.events.emit('fetched', { version: fetched, from: this.src.url })
      }
      return { node, ...await this.c.take(head.oid) }
    } catch (err) {
      const error = errorMessage(err)
      // Said once per distinct failure, not on every poll.
      if (error !== this.lastError) this.c.log.warn(`cannot sync the spec from ${this.src.url}: ${error}`)
      this.lastError = error
      return { node, outcome: 'failed', error }
    }
  }
}

/** Local development: the spec is a working directory, taken again whenever a file changes (debounced on `clock`). Returns how to stop watching. */
export async function watchDirectory (dir: string, take: (c: Candidate) => Promise<Outcome>, log: Logger, clock: Clock = systemClock): Promise<() => Promise<void>> {
  log.info(`taking the spec from the directory ${dir} (watched; no git)`)
  return await watchSpecDir(dir, (files, version) => {
    void executablesIn(dir, files.keys())
      .then(async (modes) => await take({ version, files, info: { dir }, modes }))
      .catch((err) => log.warn(`cannot take the spec directory's version ${version}: ${errorMessage(err)}`))
  }, log, undefined, clock)
}
