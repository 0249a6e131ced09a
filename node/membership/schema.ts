/** JSON Schemas for what other nodes send the membership layer. */

const memberSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'address', 'incarnation', 'heartbeat', 'status', 'characteristics', 'hub'],
  properties: {
    id: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' },
    address: { type: 'string', minLength: 3, maxLength: 300 },
    incarnation: { type: 'integer', minimum: 0 },
    heartbeat: { type: 'integer', minimum: 0 },
    status: { enum: ['alive', 'suspect', 'dead', 'left'] },
    hub: { type: 'boolean' },
    spec: { type: 'string', maxLength: 100 },
    instances: {
      type: 'object',
      maxProperties: 1000,
      propertyNames: { maxLength: 200 },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['v', 's'],
        properties: {
          v: { type: 'string', maxLength: 100 },
          s: { type: 'string', maxLength: 20 },
          g: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
          a: { type: 'string', maxLength: 300 }
        }
      }
    },
    characteristics: {
      type: 'object',
      additionalProperties: false,
      required: ['cpus', 'memoryMb', 'arch', 'labels', 'startedAt'],
      properties: {
        cpus: { type: 'integer', minimum: 1 },
        memoryMb: { type: 'number', minimum: 0 },
        arch: { type: 'string', maxLength: 32 },
        labels: { type: 'object', additionalProperties: { type: 'string' }, maxProperties: 64 },
        startedAt: { type: 'integer', minimum: 0 },
        secrets: { type: 'array', items: { type: 'string', maxLength: 128 }, maxItems: 1000 },
        containment: { enum: ['pid-namespace', 'process-group'] }
      }
    }
  }
}

export const tableSchema = {
  type: 'object',
  maxProperties: 10_000,
  additionalProperties: memberSchema
}

export const gossipPayload = {
  type: 'object',
  additionalProperties: false,
  required: ['from', 'table'],
  properties: { from: { type: 'string' }, table: tableSchema }
}
