/**
 * watchdog: fencing that does not depend on this node being scheduled. A paused (SIGSTOP),
 * frozen or stalled node cannot stop its singletons, while the other nodes declare it dead
 * after deadAfterMs and start them elsewhere. So one small process per node keeps watch:
 * the node renews a lease by writing one line to the watchdog's stdin every `renewMs` (the
 * line says how to kill each fenced instance), and when no line has come for `timeoutMs`
 * the watchdog SIGKILLs them all. It is a shell loop blocked in `read -t`: a few MB, no
 * polling, one wake-up per renewal however many instances run. It runs in its own process
 * group (a SIGSTOP to the node's terminal group does not stop it) and ends with the node
 * (EOF on its stdin, and a parent-death signal where setpriv exists).
 *
 * Margins, with timeoutMs the supervisor's fenceAfterMs (membership's suspectAfterMs):
 * - timeoutMs < deadAfterMs, so the kill lands before the others may start a replacement
 *   (2.5 s against 5 s by default; 1 s against 2 s in the tests' fast profile).
 * - renewals every timeoutMs / 5 let the node's event loop stall for 4/5 of timeoutMs
 *   (2 s by default) without a kill; a node stalled longer is about to be suspected by its
 *   peers anyway.
 *
 * It runs on the host's clock, not the supervisor's: the renewals race a real process's
 * `read -t`, and what it fences is a real process stopped by the host (SIGSTOP), which a
 * virtual clock would not see.
 *
 * Once the node runs again after such a gap it cannot know whether the watchdog fired, so
 * it calls `onLapse` with the instances that were fenced then: the supervisor gives them
 * up and decides afresh (quorum, where the singleton runs now), as after a partition.
 *
 * @example
 *   const w = new Watchdog({ timeoutMs: 2500, log, onLapse: (ids, why) => { ... } })
 *   await w.start()
 *   new ManagedProcess({ ..., fence: w })   // a singleton: tracked while it runs
 *   await w.stop()
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { findExecutable } from './contain'

/** A process the watchdog can end: ManagedProcess. */
export interface Fenced {
  readonly id: string
  /** `p:PID:START` (a process) or `g:PID:START` (a process group), see InstanceProcesses.fenceTargets. */
  fenceTargets (): string[]
}

/** The watchdog as a ManagedProcess sees it: a process is tracked while it runs. */
export interface Fence {
  track (p: Fenced): void
  untrack (p: Fenced): void
}

export interface WatchdogInit {
  /** Without a renewal for this long the watchdog SIGKILLs every tracked instance. Keep it below membership's deadAfterMs. */
  timeoutMs: number
  /** How often the node renews. Shorter tolerates longer stalls of the node, costs a wake-up each. @default timeoutMs / 5 */
  renewMs?: number
  log: Logger
  /** The node runs again after a gap of timeoutMs or more: `ids` were tracked then and may have been killed. */
  onLapse?: (ids: string[], why: string) => void
  /** A shell whose `read -t` takes fractions of a second. @default bash, else sh, whichever has one */
  shell?: string
}

/**
 * The loop. A line is the new set of targets; a timeout kills them (a pid only while it
 * still has the recorded start time, stat field 22) and says what it killed; EOF (the node
 * is gone or stopping) ends it.
 */
const SCRIPT = [
  'T=$1',
  't=',
  'while :; do',
  '  IFS= read -r -t "$T" l; r=$?',
  '  if [ $r -eq 0 ]; then t=$l; continue; fi',
  '  [ $r -gt 128 ] || exit 0',
  '  [ -n "$t" ] || continue',
  '  k=',
  '  for x in $t; do',
  '    m=${x%%:*}; y=${x#*:}; p=${y%%:*}; s=${y#*:}',
  '    st=',
  '    { read -r st < "/proc/$p/stat"; } 2>/dev/null || continue',
  '    st=${st##*) }',
  '    set -- $st',
  '    [ "${20}" = "$s" ] || continue',
  '    if [ "$m" = g ]; then kill -KILL -- "-$p" 2>/dev/null && k="$k $x"; else kill -KILL "$p" 2>/dev/null && k="$k $x"; fi',
  '  done',
  '  echo "fenced$k"',
  '  t=',
  'done'
].join('\n')

/** A gap this close to the timeout counts as a lapse: the watchdog's clock and ours differ a little. */
const LAPSE_FRACTION = 0.9

export class Watchdog implements Fence {
  private readonly tracked = new Set<Fenced>()
  private child?: ChildProcess
  private timer?: NodeJS.Timeout
  private restartTimer?: NodeJS.Timeout
  private shell?: string
  private running = false
  private lastWriteAt = 0
  /** The targets of the last line written, with their instance ids. */
  private sent = new Map<string, string>()
  /** Instance ids of targets sent lately, to name what the watchdog reports it killed. */
  private readonly names = new Map<string, string>()
  private readonly renewMs: number

  constructor (private readonly o: WatchdogInit) {
    this.renewMs = o.renewMs ?? Math.max(20, Math.floor(o.timeoutMs / 5))
  }

  /** The watchdog process's pid; undefined when none runs (no shell has `read -t`). */
  get pid (): number | undefined { return this.child?.pid }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    this.shell = this.o.shell ?? await shellWithReadTimeout([findExecutable('bash'), findExecutable('sh')])
    if (this.shell === undefined) {
      this.o.log.warn('no shell with `read -t` (bash): a paused or frozen node cannot fence its singletons until it runs again')
    } else {
      this.spawn()
      this.o.log.info(`watchdog: singletons are killed after ${fmt(this.o.timeoutMs)} without a renewal from this node (renewed every ${fmt(this.renewMs)})`)
    }
    this.timer = setInterval(() => { this.renew() }, this.renewMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    clearInterval(this.timer)
    clearTimeout(this.restartTimer)
    const child = this.child
    this.child = undefined
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.ref() // else, with nothing else to do, this process could end before the exit is seen
      child.stdin?.end()
      child.kill('SIGKILL')
      await gone
    }
  }

  track (p: Fenced): void {
    this.tracked.add(p)
    this.renew() // covered from its spawn, not from the next tick
  }

  untrack (p: Fenced): void {
    if (this.tracked.delete(p)) this.renew()
  }

  /** One renewal: notice a lapse since the last one, then send the current targets (once more when there are none, to clear them). */
  private renew (): void {
    if (!this.running) return
    const now = performance.now()
    if (this.sent.size > 0 && now - this.lastWriteAt >= this.o.timeoutMs * LAPSE_FRACTION) this.lapse(now - this.lastWriteAt)
    const targets = new Map<string, string>()
    for (const p of this.tracked) for (const t of p.fenceTargets()) targets.set(t, p.id)
    if (targets.size === 0 && this.sent.size === 0) return
    if (this.names.size > 1000) this.names.clear()
    for (const [t, id] of targets) this.names.set(t, id)
    this.sent = targets
    this.lastWriteAt = now
    const stdin = this.child?.stdin
    if (stdin !== undefined && stdin !== null && stdin.writable) stdin.write([...targets.keys()].join(' ') + '\n')
  }

  private lapse (gapMs: number): void {
    const ids = [...new Set(this.sent.values())].sort()
    this.sent = new Map()
    const why = `fenced: this node was not scheduled for ${fmt(gapMs)}, so its watchdog may have killed it (after ${fmt(this.o.timeoutMs)})`
    this.o.log.warn(`no renewal for ${fmt(gapMs)}: ${ids.join(', ')} may have been killed by the watchdog; giving them up`)
    try {
      this.o.onLapse?.(ids, why)
    } catch (err) {
      this.o.log.error(`handling the lapse failed: ${errorMessage(err)}`)
    }
  }

  private spawn (): void {
    const shell = this.shell as string
    const setpriv = process.platform === 'linux' ? findExecutable('setpriv') : undefined
    // bash reads ~/.bashrc when its stdin is a socket (it takes that for rsh): Node's pipes are sockets.
    const quiet = /(^|\/)bash$/.test(shell) ? ['--norc', '--noprofile'] : []
    const argv = [shell, ...quiet, '-c', SCRIPT, 'origin-watchdog', (this.o.timeoutMs / 1000).toFixed(3)]
    const full = setpriv === undefined ? argv : [setpriv, '--pdeathsig', 'KILL', '--', ...argv]
    const child = spawn(full[0], full.slice(1), { detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
    child.unref()
    this.child = child
    child.stdin?.on('error', () => {}) // EPIPE once it is gone: the exit handler says so
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => { this.reported(line) })
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => { this.o.log.warn(`watchdog: ${line}`) })
    child.once('error', (err) => { this.o.log.error(`watchdog: ${err.message}`) })
    child.once('exit', (code, signal) => {
      if (this.child !== child) return
      this.child = undefined
      if (!this.running) return
      this.o.log.error(`the watchdog exited (${signal ?? `code ${code ?? '?'}`}); starting it again in 1 s`)
      this.restartTimer = setTimeout(() => {
        if (!this.running) return
        this.spawn()
        this.sent = new Map()
        this.renew()
      }, 1000)
      this.restartTimer.unref()
    })
    this.lastWriteAt = performance.now()
  }

  /** A line from the watchdog: what it killed. Read once this node runs again. */
  private reported (line: string): void {
    const m = /^fenced(.*)$/.exec(line)
    if (m === null) { this.o.log.warn(`watchdog: ${line}`); return }
    const killed = m[1].trim().split(' ').filter(Boolean)
    const ids = [...new Set(killed.map((t) => this.names.get(t) ?? t))]
    this.o.log.warn(`watchdog: no renewal from this node for ${fmt(this.o.timeoutMs)}: SIGKILL to ${killed.length === 0 ? 'nothing (already gone)' : `${ids.join(', ')} (${killed.join(' ')})`}`)
  }
}

/** The first of `candidates` whose `read -t 0.05` times out (status above 128) on an open, silent stdin. */
export async function shellWithReadTimeout (candidates: Array<string | undefined>): Promise<string | undefined> {
  for (const sh of candidates) {
    if (sh === undefined) continue
    const ok = await new Promise<boolean>((resolve) => {
      const child = spawn(sh, ['-c', 'read -r -t 0.05 l; echo $?'], { stdio: ['pipe', 'pipe', 'ignore'] })
      let out = ''
      child.stdout.on('data', (b: Buffer) => { out += b.toString() })
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 2000)
      child.once('error', () => { clearTimeout(timer); resolve(false) })
      child.once('close', () => { clearTimeout(timer); child.stdin.destroy(); resolve(Number(out.trim()) > 128) })
    })
    if (ok) return sh
  }
  return undefined
}

function fmt (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}
