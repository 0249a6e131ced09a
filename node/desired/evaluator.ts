/**
 * Runs one commit's TS spec files in a separate, disposable process (evaluator-child.ts)
 * and kills it past any limit: total CPU time (real time too, at a multiple), memory (an address-space rlimit set with
 * `prlimit`, the V8 heap limit, and the process's RSS sampled from /proc), and output
 * size. Without util-linux's prlimit and /proc (not Linux) only the heap limit bounds
 * memory, so array buffers are not bounded there. The node's event loop stays free meanwhile; what comes back is JSON text, parsed
 * and checked by the caller. One evaluation runs at a time per node, so a burst of commits
 * cannot multiply the memory limit.
 *
 * @example
 *   const r = await evaluateTs({ entries: ['cluster.ts'], paths, read, limits: specLimits() })
 *   if (r.stopped) console.error(formatSpecError(r.stopped))
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { setPriority } from 'node:os'
import { join } from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import { promisify } from 'node:util'
import { OriginError, errorMessage } from '../errors'
import { childAvailable, childProgram } from '../launch/self'
import type { FromEvaluator, ToEvaluator } from './eval-protocol'
import { formatBytes, formatMs, type SpecLimits } from './limits'
import { cpuTimeMs } from '../procstat'
import type { Evaluation } from './sandbox'
import type { SpecError } from './types'

export type { Evaluation } from './sandbox'

export interface EvaluateInit {
  /** The TS entry files, evaluated in this order. */
  entries: string[]
  /** Every path of the spec version (what imports may resolve to). */
  paths: string[]
  /** The text of a file the evaluator asks for (an entry or an import), or why it may not have it. Called once a file. */
  read: (path: string) => { ok: true, text: string } | { ok: false, message: string }
  limits: SpecLimits
}

export interface EvaluateResult {
  /** Each evaluated entry's outcome; entries after a stop are missing. */
  results: Map<string, Evaluation>
  /** Why the evaluator was killed, naming the entry that was running. */
  stopped?: SpecError
}

const CHILD = join(__dirname, 'evaluator-child.js')
const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => existsSync(p))
/** Starting the evaluator (node and TypeScript) is not the spec's time; it gets this long. */
const START_TIMEOUT_MS = 30_000
const SAMPLE_MS = 50
/** The evaluator's nice level (see limitAndStart). */
const EVALUATOR_NICE = 19
/**
 * The time limits count the evaluator's CPU time, so a busy machine (the evaluator runs at
 * a lower priority than the node and its programs) does not turn a valid spec into a
 * rejected one. Real time is bounded too, at this many times the limit: an evaluator the
 * machine gives almost no CPU still ends, and the spec is tried again later, not rejected.
 */
const REAL_TIME_FACTOR = 20
/** Memory above the limit the process may use before it is killed: young generation, code, stacks. */
const SLACK = 64 * 1024 * 1024
const MiB = 1024 * 1024
const MAX_ERRORS = 100
const MAX_TEXT = 4000

let queue: Promise<unknown> = Promise.resolve()

// Every limit here (start, CPU and real time, memory sampling) is on the real clock, not the
// node's: it bounds a real child process, which a virtual clock's time does not slow down.

/** Evaluate `entries` in a fresh evaluator process, one at a time per node. */
export async function evaluateTs (init: EvaluateInit): Promise<EvaluateResult> {
  const mine = queue.then(async () => await new EvaluatorRun(init).run())
  queue = mine.catch(() => undefined)
  return await mine
}

class EvaluatorRun {
  private child!: ChildProcessWithoutNullStreams
  private readonly results = new Map<string, Evaluation>()
  private state: 'starting' | 'running' | 'done' = 'starting'
  private next = 0
  private current?: string
  /** The evaluator's CPU time (ms) as last sampled, and when the clock started. */
  private cpuMs = 0
  private startCpuMs = 0
  /** No /proc to read CPU time from (not Linux): the total limit counts real time instead. */
  private realTimeOnly = false
  private output = 0
  private stdout = ''
  private stderr = ''
  private baselineRss?: number
  private sampling = false
  private readonly timers: NodeJS.Timeout[] = []
  private resolve!: (r: EvaluateResult) => void
  private reject!: (err: Error) => void

  constructor (private readonly init: EvaluateInit) {}

  private get finished (): boolean { return this.state === 'done' }

  async run (): Promise<EvaluateResult> {
    if (!childAvailable(CHILD)) throw new OriginError('E_START_FAILED', `the spec evaluator ${CHILD} is missing (is the build complete?)`)
    const done = new Promise<EvaluateResult>((resolve, reject) => { this.resolve = resolve; this.reject = reject })
    const { memoryMb } = this.init.limits
    // From an origin-node executable this is the executable again, with ORIGIN_ENTRY (launch/self.ts).
    const program = childProgram('spec-evaluator', CHILD, [`--max-old-space-size=${memoryMb + 64}`])
    this.child = spawn(program.command, program.args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      // Nothing of the node's environment (tokens, NODE_OPTIONS); few malloc arenas, each of
      // which would reserve 64 MiB of the address space the limit counts.
      env: { MALLOC_ARENA_MAX: '2', ...program.env }
    })
    const decoder = new StringDecoder('utf8')
    this.child.stdout.on('data', (chunk: Buffer) => {
      try {
        this.onOutput(decoder.write(chunk), chunk.length)
      } catch (err) {
        this.fail(`spec evaluation failed: ${errorMessage(err)}`) // a bug here must not end the node
      }
    })
    this.child.stderr.on('data', (chunk: Buffer) => { this.stderr = (this.stderr + chunk.toString('utf8')).slice(-4000) })
    this.child.stdin.on('error', () => {}) // it died: 'exit' says why
    this.child.on('error', (err) => { this.fail(`cannot start the spec evaluator: ${errorMessage(err)}`) })
    this.child.on('exit', (code, signal) => { this.onExit(code, signal) })
    this.timers.push(setTimeout(() => { this.fail(`the spec evaluator did not start within ${formatMs(START_TIMEOUT_MS)}`) }, START_TIMEOUT_MS))
    return await done
  }

  private onOutput (text: string, bytes: number): void {
    if (this.state === 'done') return
    this.output += bytes
    if (this.output > this.init.limits.maxOutputBytes) {
      this.stop(`evaluation wrote more than ${formatBytes(this.init.limits.maxOutputBytes)} of output; killed`)
      return
    }
    this.stdout += text
    for (let nl = this.stdout.indexOf('\n'); nl >= 0 && !this.finished; nl = this.stdout.indexOf('\n')) {
      const line = this.stdout.slice(0, nl)
      this.stdout = this.stdout.slice(nl + 1)
      this.onLine(line)
    }
  }

  private onLine (line: string): void {
    let m: FromEvaluator
    try {
      m = JSON.parse(line) as FromEvaluator
    } catch {
      return this.stop('the evaluator wrote something that is not JSON; killed')
    }
    const t = m !== null && typeof m === 'object' ? m.t : undefined
    if (t === 'ready' && this.state === 'starting') {
      this.limitAndStart().catch((err) => { this.fail(`cannot start the spec evaluator: ${errorMessage(err)}`) })
    } else if (t === 'read' && this.state === 'running' && typeof (m as { path?: unknown }).path === 'string') {
      const path = (m as { path: string }).path
      const r = this.init.read(path)
      this.send(r.ok ? { t: 'file', path, text: r.text } : { t: 'file', path, refused: r.message })
    } else if (t === 'result' && this.state === 'running' && (m as { file?: unknown }).file === this.current) {
      const result = checkEvaluation(m, this.init.limits.memoryMb)
      if (result === undefined) return this.stop('the evaluator sent a result that is not well-formed; killed')
      this.results.set(this.current as string, result)
      this.evaluateNext()
    } else {
      this.stop(`the evaluator sent an unexpected "${String(t)}" message; killed`)
    }
  }

  /** TypeScript is loaded: cap the process's address space at what it uses now plus the limit, then start the clock. */
  private async limitAndStart (): Promise<void> {
    const pid = this.child.pid
    const status = pid === undefined ? undefined : await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined)
    const kb = (field: string): number | undefined => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status ?? '')
      return m === null ? undefined : Number(m[1]) * 1024
    }
    const size = kb('VmSize')
    this.baselineRss = kb('VmRSS')
    if (PRLIMIT !== undefined && pid !== undefined && size !== undefined) {
      const as = size + this.init.limits.memoryMb * MiB + SLACK
      // Failing to set it leaves the heap limit and the RSS sampling: no reason to refuse the spec.
      await promisify(execFile)(PRLIMIT, ['--pid', String(pid), `--as=${as}`, '--core=0']).catch(() => undefined)
    }
    if (pid !== undefined) {
      // The node's own work (heartbeats, RPCs) comes first when CPUs are short (at nice 10 a
      // looping spec made nodes miss pings). The limits count CPU time, so a spec the
      // machine starves is slowed down, not rejected. If this is refused, it runs at the
      // node's priority.
      try { setPriority(pid, EVALUATOR_NICE) } catch {}
    }
    const cpu = await cpuTimeMs(pid)
    if (this.state !== 'starting') return
    clearTimeout(this.timers.shift())
    this.state = 'running'
    this.realTimeOnly = cpu === undefined
    this.cpuMs = this.startCpuMs = cpu ?? Date.now()
    const { totalMs } = this.init.limits
    this.timers.push(setTimeout(() => {
      // Not the spec's doing: it is not rejected, and the next sync tries it again.
      this.fail(`the machine gave the spec evaluator too little CPU: ${formatMs(totalMs * REAL_TIME_FACTOR)} of real time were not enough for at most ${formatMs(totalMs)} of CPU time`)
    }, totalMs * REAL_TIME_FACTOR))
    this.timers.push(setInterval(() => { void this.sample() }, SAMPLE_MS))
    this.send({ t: 'start', paths: this.init.paths })
    this.evaluateNext()
  }

  private evaluateNext (): void {
    const file = this.init.entries[this.next++]
    if (file === undefined) return this.finish()
    this.current = file
    const left = this.init.limits.totalMs - (this.cpuMs - this.startCpuMs)
    const { fileMs } = this.init.limits
    // With less than fileMs left, the total limit decides: the evaluator's own limit comes later.
    const timeoutMs = left >= fileMs ? fileMs : Math.max(1, Math.round(left)) + 1000
    this.send({ t: 'eval', file, timeoutMs })
  }

  /**
   * The evaluator's CPU time and memory, every SAMPLE_MS: past the total time or the memory
   * limit it is killed. (The evaluator keeps each file's own time limit itself.)
   */
  private async sample (): Promise<void> {
    if (this.sampling || this.state !== 'running') return
    this.sampling = true
    try {
      const pid = this.child.pid
      const cpu = this.realTimeOnly ? Date.now() : await cpuTimeMs(pid)
      if (cpu !== undefined && this.state === 'running') {
        this.cpuMs = cpu
        if (cpu - this.startCpuMs > this.init.limits.totalMs) {
          return this.stop(`spec evaluation took longer than ${formatMs(this.init.limits.totalMs)} in total (this file was running); killed`)
        }
      }
      if (this.baselineRss === undefined || pid === undefined) return
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
      const m = /^VmRSS:\s+(\d+) kB/m.exec(status)
      if (m !== null && Number(m[1]) * 1024 > this.baselineRss + this.init.limits.memoryMb * MiB + SLACK) {
        this.stop(memoryMessage(this.init.limits.memoryMb))
      }
    } finally {
      this.sampling = false
    }
  }

  private onExit (code: number | null, signal: NodeJS.Signals | null): void {
    if (this.state === 'done') return
    const how = signal !== null ? `signal ${signal}` : `exit code ${String(code)}`
    const said = this.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('at ')).slice(-1)[0] ?? ''
    if (this.state === 'starting') return this.fail(`the spec evaluator stopped before it was ready (${how})${said === '' ? '' : `: ${said}`}`)
    if (/out of memory|allocation failed|heap limit|bad_alloc/i.test(this.stderr)) return this.stop(memoryMessage(this.init.limits.memoryMb))
    this.stop(`the evaluator stopped (${how}) while evaluating this file${said === '' ? '' : `: ${said.slice(0, 300)}`}`)
  }

  private send (m: ToEvaluator): void {
    if (this.child.stdin.writable) this.child.stdin.write(JSON.stringify(m) + '\n')
  }

  /** The evaluator went past a limit or misbehaved: that is the spec's doing, so it is the answer. */
  private stop (message: string): void {
    this.finish({ file: this.current ?? this.init.entries[0] ?? 'cluster.ts', message })
  }

  private finish (stopped?: SpecError): void {
    if (this.state === 'done') return
    this.state = 'done'
    this.cleanup()
    this.resolve(stopped === undefined ? { results: this.results } : { results: this.results, stopped })
  }

  /** Not the spec's doing (the evaluator cannot start): the caller decides; nothing is rejected. */
  private fail (message: string): void {
    if (this.state === 'done') return
    this.state = 'done'
    this.cleanup()
    this.reject(new OriginError('E_START_FAILED', message))
  }

  private cleanup (): void {
    for (const t of this.timers) clearTimeout(t)
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

function memoryMessage (memoryMb: number): string {
  return `evaluation used more than ${memoryMb} MiB of memory; killed`
}

const isPositiveInt = (v: unknown): boolean => v === undefined || (Number.isSafeInteger(v) && (v as number) > 0)
const clip = (s: string): string => s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) + '...' : s

/** A result line from the evaluator as an Evaluation, or undefined if it is not one. */
function checkEvaluation (m: unknown, memoryMb: number): Evaluation | undefined {
  const r = m as { ok?: unknown, json?: unknown, errors?: unknown }
  if (r.ok === true) return typeof r.json === 'string' ? { ok: true, json: r.json } : undefined
  if (r.ok !== false || !Array.isArray(r.errors)) return undefined
  const errors: SpecError[] = []
  for (const e of r.errors.slice(0, MAX_ERRORS) as unknown[]) {
    const x = (e ?? {}) as Record<string, unknown>
    if (typeof x.file !== 'string' || typeof x.message !== 'string' || !isPositiveInt(x.line) || !isPositiveInt(x.column)) return undefined
    if (x.path !== undefined && typeof x.path !== 'string') return undefined
    // Under the address-space limit a large array buffer fails to allocate rather than the process dying.
    const message = /Array buffer allocation failed/.test(x.message) ? `evaluation used more than ${memoryMb} MiB of memory (${x.message})` : x.message
    const error: SpecError = { file: clip(x.file), message: clip(message) }
    if (x.line !== undefined) error.line = x.line as number
    if (x.column !== undefined) error.column = x.column as number
    if (x.path !== undefined) error.path = clip(x.path)
    errors.push(error)
  }
  return { ok: false, errors }
}
