/**
 * Instance logs as operators fetch them: the lines of a service's instances on one node,
 * rotated parts included and in order, optionally only recent ones, optionally followed
 * as they are written. The node an operator is connected to relays to the node that has them.
 */
import { open, stat } from 'node:fs/promises'
import { OriginError } from '../errors'
import { readLog } from '../supervisor/logfile'
import type { Supervisor } from '../supervisor'

export interface LogsRequest { node: string, service: string, lines?: number, since?: string, follow?: boolean }
export interface LogChunk { instance: string, text: string }

export const logsPayload = {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'service'],
  properties: {
    node: { type: 'string', minLength: 1 },
    service: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' },
    lines: { type: 'integer', minimum: 1, maximum: 10_000_000 },
    since: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2})$' },
    follow: { type: 'boolean' }
  }
}

const CHUNK = 256 * 1024

/** This node's logs for `req.service`, chunked for the wire; with follow, new lines until `signal` aborts. */
export async function * localLogs (supervisor: Supervisor, req: LogsRequest, signal: AbortSignal): AsyncIterable<LogChunk> {
  const instances = supervisor.report().filter((r) => r.service === req.service)
  if (instances.length === 0) throw new OriginError('E_NOT_FOUND', `${req.service} has no instance on ${supervisor.nodeId}`, { service: req.service })
  const offsets = new Map<string, number>()
  for (const r of instances) {
    const text = await readLog(r.logPath, { lines: req.lines, since: req.since === undefined ? undefined : new Date(req.since) })
    for (let i = 0; i < text.length; i += CHUNK) yield { instance: r.instance, text: text.slice(i, i + CHUNK) }
    offsets.set(r.logPath, (await stat(r.logPath).catch(() => ({ size: 0 }))).size)
  }
  if (req.follow !== true) return
  while (!signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    for (const r of instances) {
      const size = (await stat(r.logPath).catch(() => ({ size: 0 }))).size
      let from = offsets.get(r.logPath) ?? 0
      if (size < from) from = 0 // rotated: the current file starts over
      if (size === from) continue
      const fh = await open(r.logPath, 'r')
      try {
        const buf = Buffer.alloc(Math.min(size - from, CHUNK))
        const { bytesRead } = await fh.read(buf, 0, buf.length, from)
        offsets.set(r.logPath, from + bytesRead)
        yield { instance: r.instance, text: buf.subarray(0, bytesRead).toString() }
      } finally {
        await fh.close()
      }
    }
  }
}
