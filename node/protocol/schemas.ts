/** Payload schemas used on more than one surface (a node relays an operator's request to another node as is). */

export const nodeIdField = { type: 'string', maxLength: 63 } as const

/** supervisor.logs and cluster.logs: `LogsRequest`. */
export const logsPayload = {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'service'],
  properties: {
    node: { type: 'string', minLength: 1, maxLength: 63 },
    // A service name, `node` (the node log) or `build-<service>` (a build's output).
    service: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' },
    lines: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    since: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2})$' },
    follow: { type: 'boolean' }
  }
}

const kinds = ['node', 'member', 'hubs', 'spec-applied', 'spec-rejected', 'phase', 'instance', 'rollout', 'operator', 'downing', 'health']
const query = {
  since: { type: 'number' },
  until: { type: 'number' },
  service: { type: 'string', maxLength: 63 },
  kinds: { type: 'array', maxItems: 16, items: { enum: kinds } },
  limit: { type: 'integer', minimum: 0, maximum: 1_000_000 }
}
/** journal.read: a `JournalQuery`. */
export const journalReadPayload = { type: 'object', additionalProperties: false, properties: query }
/** cluster.events: an `EventsRequest`. */
export const eventsPayload = { type: 'object', additionalProperties: false, properties: { ...query, node: nodeIdField } }
/** cluster.replay: `{ at }`. */
export const replayPayload = { type: 'object', additionalProperties: false, required: ['at'], properties: { at: { type: 'number' } } }

export const evalCode = { type: 'string', minLength: 1, maxLength: 100_000 } as const
/** The evaluation's time limit, in ms (it runs on a thread of its own: the node goes on meanwhile). */
export const evalLimit = { type: 'integer', minimum: 10, maximum: 10_000 } as const
export const commitField = { type: 'string', pattern: '^[0-9a-f]{40}$' } as const
