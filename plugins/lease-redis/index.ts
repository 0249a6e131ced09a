/**
 * lease-redis: the `lease` downing strategy's tie-breaker held in Redis (see
 * node/membership/lease.ts for the contract). The lease is one key, written with a time to
 * live only if it does not exist; its value says the fencing token, the grant's random id
 * and the holder. The token comes from a counter key (`<key>:fence`) incremented in the
 * same Lua script, so every grant has a greater one than every grant before. Renewing and
 * releasing are Lua scripts too, acting only while the key still holds this grant's value,
 * so a holder whose grant expired cannot extend or delete the next holder's.
 *
 *   "layers": { "lease": { "use": "lease-redis", "config": {
 *     "url": "redis://10.0.0.5:6379", "ttlMs": 10000, "passwordFile": "/etc/origin/redis-password" } } }
 *
 * Run the Redis with persistence (appendonly yes): a Redis that restarts empty starts the
 * counter again, and a fencing token would no longer be greater than one given before.
 * One Redis is one point of failure for the tie-breaker (not for the cluster: without the
 * lease, the `lease` strategy only downs nobody).
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { errorMessage } from '../../node/errors'
import type { Acquired, Lease, LeaseComponents, LeaseGrant, LeaseInit } from '../../node/membership/lease'
import { RespClient, type Reply } from './resp'

export interface RedisLeaseInit extends LeaseInit {
  /** Where Redis listens: `redis://host:port`. */
  url: string
  /** A file holding the password Redis asks for (requirepass), read at start. @default none */
  passwordFile?: string
  /**
   * How long a grant lasts unrenewed. Longer rides out a slow Redis or holder; shorter lets
   * the other side take over sooner when the holder dies. @default 10000
   */
  ttlMs?: number
  /** Longest one call waits; keep it well under ttlMs / 3. @default 2000 */
  requestTimeoutMs?: number
}

export const redisLeaseDefaults = { ttlMs: 10_000, requestTimeoutMs: 2000 }

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', pattern: '^redis://[^/\\s:]+:[0-9]{1,5}/?$', maxLength: 512 },
    key: { type: 'string', pattern: '^\\S+$', maxLength: 1024 },
    passwordFile: { type: 'string', minLength: 1, maxLength: 4096 },
    ttlMs: { type: 'integer', minimum: 100, maximum: 3_600_000 },
    requestTimeoutMs: { type: 'integer', minimum: 50, maximum: 60_000 }
  }
}

// KEYS: the lease, its counter. ARGV: grant id, holder, ttl ms. The value: "<token> <id> <holder>".
const ACQUIRE = `
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
local value = redis.call('INCR', KEYS[2]) .. ' ' .. ARGV[1] .. ' ' .. ARGV[2]
redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
return {1, value}`
// KEYS: the lease. ARGV: the grant's value, ttl ms.
const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`

export function lease (init: RedisLeaseInit) {
  return (c: LeaseComponents): Lease => new RedisLease(init, c)
}

export default lease

/** A lease value's parts; undefined for a value this plugin did not write. */
export function parseValue (value: string): { token: number, id: string, holder: string } | undefined {
  const m = /^(\d+) ([0-9a-f]+) (.*)$/s.exec(value)
  return m === null ? undefined : { token: Number(m[1]), id: m[2], holder: m[3] }
}

class RedisLease implements Lease {
  readonly key: string
  readonly ttlMs: number
  private client: RespClient | undefined

  constructor (private readonly init: RedisLeaseInit, private readonly c: LeaseComponents) {
    if (typeof init.url !== 'string') throw new Error('lease-redis needs config.url, redis://host:port')
    if (typeof init.key !== 'string' || init.key === '') throw new Error('lease-redis needs a key')
    this.key = init.key
    this.ttlMs = init.ttlMs ?? redisLeaseDefaults.ttlMs
  }

  async start (): Promise<void> {
    const url = new URL(this.init.url)
    let password: string | undefined
    if (this.init.passwordFile !== undefined) {
      try { password = (await readFile(this.init.passwordFile, 'utf8')).trim() } catch (err) { throw new Error(`lease-redis: cannot read passwordFile ${this.init.passwordFile}: ${errorMessage(err)}`) }
    }
    this.client = new RespClient({ host: url.hostname, port: Number(url.port), password, timeoutMs: this.init.requestTimeoutMs ?? redisLeaseDefaults.requestTimeoutMs })
    this.c.log.info(`lease ${this.key} in redis at ${this.client.endpoint} (ttl ${this.ttlMs} ms)`)
  }

  async stop (): Promise<void> {
    this.client?.close()
  }

  async acquire (holder: string, ttlMs: number): Promise<Acquired> {
    const id = randomBytes(12).toString('hex')
    const [won, value] = await this.redis().call('EVAL', ACQUIRE, 2, this.key, `${this.key}:fence`, id, holder, ttlMs) as [number, string]
    const v = this.parsed(value)
    if (won === 1) return { kind: 'granted', grant: { key: this.key, holder, token: v.token, id: value, ttlMs } }
    return { kind: 'taken', key: this.key, holder: v.holder, token: v.token }
  }

  async read (): Promise<{ holder: string, token: number } | undefined> {
    const value = await this.redis().call('GET', this.key)
    if (value === null) return undefined
    const { holder, token } = this.parsed(value)
    return { holder, token }
  }

  // The grant's id is the whole value it wrote: renew and release compare it as it is.
  async renew (grant: LeaseGrant): Promise<boolean> {
    return await this.redis().call('EVAL', RENEW, 1, this.key, grant.id, grant.ttlMs) === 1
  }

  async release (grant: LeaseGrant): Promise<void> {
    await this.redis().call('EVAL', RELEASE, 1, this.key, grant.id)
  }

  private parsed (value: Reply): { token: number, id: string, holder: string } {
    const v = typeof value === 'string' ? parseValue(value) : undefined
    if (v === undefined) throw new Error(`lease-redis: ${this.key} at ${this.redis().endpoint} holds ${JSON.stringify(value)}, not a lease this plugin wrote`)
    return v
  }

  private redis (): RespClient {
    if (this.client === undefined) throw new Error(`lease-redis (${this.key}) has not started`)
    return this.client
  }
}
