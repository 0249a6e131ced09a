/**
 * Scoped logs: each layer logs through a logger named after it, in lines a person can
 * read (`membership: node-c is dead (no heartbeat for 3.0 s)`). Where lines go is set
 * once per process (stderr by default, a file too for nodes).
 */
import { isoTime } from './clock'

export type Level = 'debug' | 'info' | 'warn' | 'error'
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug (msg: string): void
  info (msg: string): void
  warn (msg: string): void
  error (msg: string): void
  child (scope: string): Logger
}

export interface LogSink { write (line: string): void }

export interface LogOptions {
  /** @default 'info' (ORIGIN_LOG_LEVEL overrides) */
  level?: Level
  /** Where lines go. @default stderr */
  sinks?: LogSink[]
  /** The time lines are stamped with (a node on a virtual clock logs its own time). @default Date.now */
  now?: () => number
}

export const stderrSink: LogSink = { write: (line) => process.stderr.write(line + '\n') }

export function createLogger (scope: string, opts: LogOptions = {}): Logger {
  const level = opts.level ?? (process.env.ORIGIN_LOG_LEVEL as Level | undefined) ?? 'info'
  const sinks = opts.sinks ?? [stderrSink]
  const now = opts.now ?? Date.now
  const emit = (lvl: Level, msg: string): void => {
    if (rank[lvl] < rank[level]) return
    const line = `${isoTime(now())} ${lvl.padEnd(5)} ${scope}: ${msg}`
    for (const s of sinks) s.write(line)
  }
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
    child: (sub) => createLogger(`${scope}/${sub}`, { level, sinks, now })
  }
}

/** A logger that drops everything; for tests and library use. */
export const silentLogger: Logger = {
  debug () {}, info () {}, warn () {}, error () {}, child: () => silentLogger
}
