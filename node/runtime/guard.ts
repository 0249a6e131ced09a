/**
 * guard: containers do not outlive their node. A container is the engine's child, not the
 * node's, so no parent-death signal reaches it when the node is killed (`kill -9`, a
 * crash, the OOM killer). One small process per node that runs containers keeps watch: the
 * node writes it a line with the containers' inits (`p:PID:START`) whenever they change,
 * and `bye` when it stops on purpose. EOF without `bye` means the node died: the guard
 * SIGKILLs every init still there (a pid only while it has the recorded start time), which
 * ends each container's PID namespace, and exits. The exited containers are removed by the
 * node's next start (endContainerLeftovers).
 *
 * The guard is a shell loop blocked in `read`: no polling, a few hundred KB. It runs in
 * its own process group and session, so a signal to the node's group does not reach it.
 *
 * @example
 *   const g = new ContainerGuard({ log })
 *   g.track('web-1', 'p:4321:98765')
 *   g.untrack('web-1')
 *   g.close()      // the node stops on purpose: the guard exits and kills nothing
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { findExecutable } from '../supervisor/contain'

const SCRIPT = [
  't=',
  'while IFS= read -r l; do',
  '  [ "$l" = bye ] && exit 0',
  '  t=$l',
  'done',
  'for x in $t; do',
  '  y=${x#*:}; p=${y%%:*}; s=${y#*:}',
  '  st=',
  '  { read -r st < "/proc/$p/stat"; } 2>/dev/null || continue',
  '  st=${st##*) }',
  '  set -- $st',
  '  [ "${20}" = "$s" ] && kill -KILL "$p" 2>/dev/null',
  'done',
  'exit 0'
].join('\n')

export class ContainerGuard {
  private child?: ChildProcess
  private readonly targets = new Map<string, string>()
  private closed = false
  private spawnedAt = 0

  constructor (private readonly o: { log: Logger, shell?: string }) {}

  /** The guard's pid, while it runs. */
  get pid (): number | undefined { return this.child?.pid }

  track (id: string, target: string): void {
    this.targets.set(id, target)
    this.send()
  }

  untrack (id: string): void {
    if (this.targets.delete(id)) this.send()
  }

  /** The node stops on purpose: the guard exits without killing anything. */
  close (): void {
    this.closed = true
    const c = this.child
    this.child = undefined
    if (c === undefined) return
    c.stdin?.end('bye\n')
  }

  private send (): void {
    if (this.closed) return
    const c = this.child ?? this.spawn()
    if (c === undefined) return
    c.stdin?.write([...this.targets.values()].join(' ') + '\n')
  }

  private spawn (): ChildProcess | undefined {
    const sh = this.o.shell ?? findExecutable('sh')
    if (sh === undefined) {
      this.o.log.warn('no sh for the container guard: containers of a node killed with SIGKILL keep running until it starts again')
      return undefined
    }
    try {
      // Real time: how long an OS process (the guard) lived, not a decision of the cluster's.
      this.spawnedAt = Date.now()
      const c = spawn(sh, ['-c', SCRIPT, 'origin-container-guard'], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] })
      c.on('error', (err) => this.o.log.warn(`container guard: ${err.message}`))
      c.stdin?.on('error', () => {}) // EPIPE once it has gone: told by 'exit'
      c.once('exit', (code, signal) => {
        if (this.child !== c) return
        this.child = undefined
        if (!this.closed) this.o.log.warn(`the container guard exited (${signal ?? `code ${String(code)}`}); starting another`)
        // Not in a loop: one that keeps exiting is started again by the next change only.
        if (!this.closed && this.targets.size > 0 && Date.now() - this.spawnedAt > 1000) this.send()
      })
      // It must not keep the node's event loop alive, nor die with the node.
      c.unref()
      const stdin = c.stdin as unknown as { unref?: () => void } | null
      stdin?.unref?.()
      this.child = c
      return c
    } catch (err) {
      this.o.log.warn(`cannot start the container guard: ${errorMessage(err)}; containers of a node killed with SIGKILL keep running until it starts again`)
      return undefined
    }
  }
}
