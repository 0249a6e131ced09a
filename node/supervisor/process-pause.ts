/**
 * Pausing an instance: SIGSTOP to every process of its run or, while there is none, the
 * restart held back until resume; resuming returns it to the state it was paused in,
 * which is remembered here.
 */
import type { Logger } from '../log'
import type { RunHandle } from '../runtime/contract'
import type { InstanceLog } from './process-log'
import type { InstanceState, InstanceStatus, Run } from './process-types'

/** What pausing needs of the lifecycle. */
export interface PauseHost {
  ilog: InstanceLog
  log: Logger
  status: () => InstanceStatus
  update: (patch: Partial<InstanceStatus>) => void
  run: () => Run | undefined
  /** An asynchronous runtime is creating a run. */
  creating: () => boolean
  runtimeKind: string
  /** Paused in backoff: the restart due is cancelled. */
  cancelRestart: () => void
  /** Resumed with no run: the restart held back happens now. */
  restart: () => void
}

export class Pause {
  /** The state (and its reason) the instance was paused in. */
  private before: { state: InstanceState, reason?: string } | undefined

  constructor (private readonly h: PauseHost) {}

  /** SIGSTOP to every process of the instance. Paused during backoff, the restart waits for resume(). */
  pause (): void {
    const { state: s, reason } = this.h.status()
    if (s === 'paused' || s === 'stopping' || s === 'stopped' || s === 'failed') return
    this.before = { state: s, reason }
    const run = this.h.run()
    if (run !== undefined) {
      run.handle.pause()
      this.h.ilog.origin(`paused (SIGSTOP to ${run.handle.what})`)
    } else if (this.h.creating()) {
      this.h.ilog.origin('paused while starting; the run is paused as soon as it exists')
    } else {
      this.h.cancelRestart()
      this.h.ilog.origin('paused during backoff; the restart waits for resume')
    }
    this.h.log.info('paused')
    this.h.update({ state: 'paused', reason: 'paused on request' })
  }

  /** SIGCONT to every process of the instance (or the restart that pause() held back). */
  resume (): void {
    if (this.h.status().state !== 'paused') return
    const prev = this.before ?? { state: 'ready' }
    this.before = undefined
    this.h.log.info('resumed')
    const run = this.h.run()
    if (run === undefined && this.h.creating()) {
      // The run being created was not paused: it goes on as started.
      this.h.update({ state: 'starting', reason: `starting a ${this.h.runtimeKind} run` })
      return
    }
    if (run === undefined) {
      this.h.restart()
      return
    }
    run.handle.resume()
    run.failures = 0
    this.h.ilog.origin(`resumed (SIGCONT to ${run.handle.what})`)
    this.h.update({ state: prev.state, reason: prev.reason })
  }

  /** A run created while paused: paused as soon as it exists. */
  pauseCreated (handle: RunHandle): void {
    const { state, reason } = this.h.status()
    this.before = { state, reason }
    handle.pause()
    this.h.ilog.origin(`paused (SIGSTOP to ${handle.what})`)
    this.h.update({ state: 'paused', reason: 'paused on request' })
  }

  /** A run that ended while paused: its restart waits for resume, as a pause means "do not run". */
  holdRestart (reason: string): void {
    this.before = { state: 'backoff', reason }
  }
}
