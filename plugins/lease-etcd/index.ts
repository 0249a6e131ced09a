/**
 * lease-etcd: the `lease` downing strategy's tie-breaker held in etcd (v3, over its JSON
 * gateway; see node/membership/lease.ts for the contract). Acquiring grants an etcd lease
 * of `ttlMs` and, in one transaction, writes `key` (value: the holder's node id) attached
 * to it only if the key does not exist; the fencing token is the revision of that write,
 * which etcd makes greater than any before. Renewing is a keepalive plus a check that the
 * key is still the one this grant wrote; releasing revokes the etcd lease, which deletes
 * the key. A holder that dies stops renewing, and etcd deletes the key `ttlMs` later.
 *
 *   "layers": { "lease": { "use": "lease-etcd", "config": {
 *     "endpoints": ["http://10.0.0.5:2379", "http://10.0.0.6:2379"],
 *     "ttlMs": 10000 } } }
 *
 * With https endpoints, `tls: { "caFile", "certFile", "keyFile" }` (PEM files). etcd
 * rounds a ttl below its minimum (2 s with its default timings) up to it.
 */
import { readFile } from 'node:fs/promises'
import { errorMessage } from '../../node/errors'
import type { Acquired, Lease, LeaseComponents, LeaseGrant, LeaseInit } from '../../node/membership/lease'
import { EtcdClient, b64, unb64 } from './client'

export interface EtcdLeaseInit extends LeaseInit {
  /** etcd client URLs (`http://host:2379`), tried in turn; at least one. */
  endpoints: string[]
  /**
   * How long a grant lasts unrenewed. Longer rides out a slow etcd or holder; shorter lets
   * the other side take over sooner when the holder dies. @default 10000
   */
  ttlMs?: number
  /** Longest one call waits for one endpoint; keep it well under ttlMs / 3. @default 2000 */
  requestTimeoutMs?: number
  /** For https endpoints: PEM files of the CA that signed etcd's certificate, and a client certificate if etcd asks for one. */
  tls?: { caFile?: string, certFile?: string, keyFile?: string }
}

export const etcdLeaseDefaults = { ttlMs: 10_000, requestTimeoutMs: 2000 }

const file = { type: 'string', minLength: 1, maxLength: 4096 }

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['endpoints'],
  properties: {
    endpoints: { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string', pattern: '^https?://[^/\\s]+/?$', maxLength: 512 } },
    key: { type: 'string', pattern: '^/\\S+$', maxLength: 1024 },
    ttlMs: { type: 'integer', minimum: 1000, maximum: 3_600_000 },
    requestTimeoutMs: { type: 'integer', minimum: 50, maximum: 60_000 },
    tls: {
      type: 'object',
      additionalProperties: false,
      properties: { caFile: file, certFile: file, keyFile: file }
    }
  }
}

export function lease (init: EtcdLeaseInit) {
  return (c: LeaseComponents): Lease => new EtcdLease(init, c)
}

export default lease

class EtcdLease implements Lease {
  readonly key: string
  readonly ttlMs: number
  private client: EtcdClient | undefined

  constructor (private readonly init: EtcdLeaseInit, private readonly c: LeaseComponents) {
    if (!Array.isArray(init.endpoints) || init.endpoints.length === 0) throw new Error('lease-etcd needs config.endpoints, etcd client URLs')
    if (typeof init.key !== 'string' || !init.key.startsWith('/')) throw new Error('lease-etcd needs a key starting with "/"')
    this.key = init.key
    this.ttlMs = init.ttlMs ?? etcdLeaseDefaults.ttlMs
  }

  async start (): Promise<void> {
    const t = this.init.tls ?? {}
    const read = async (what: string, path: string | undefined): Promise<string | undefined> => {
      if (path === undefined) return undefined
      try { return await readFile(path, 'utf8') } catch (err) { throw new Error(`lease-etcd: cannot read tls.${what} ${path}: ${errorMessage(err)}`) }
    }
    const tls = { ca: await read('caFile', t.caFile), cert: await read('certFile', t.certFile), key: await read('keyFile', t.keyFile) }
    this.client = new EtcdClient({ endpoints: this.init.endpoints, timeoutMs: this.init.requestTimeoutMs ?? etcdLeaseDefaults.requestTimeoutMs, tls })
    this.c.log.info(`lease ${this.key} in etcd at ${this.init.endpoints.join(', ')} (ttl ${this.ttlMs} ms)`)
  }

  async stop (): Promise<void> {
    this.client?.close()
  }

  async acquire (holder: string, ttlMs: number): Promise<Acquired> {
    const etcd = this.etcd()
    const granted = await etcd.call('/v3/lease/grant', { TTL: String(Math.max(1, Math.ceil(ttlMs / 1000))) })
    const id = String(granted.ID)
    const key = b64(this.key)
    let txn: any
    try {
      txn = await etcd.call('/v3/kv/txn', {
        compare: [{ key, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
        success: [{ request_put: { key, value: b64(holder), lease: id } }],
        failure: [{ request_range: { key } }]
      })
    } catch (err) {
      await this.revoke(id)
      throw err
    }
    if (txn.succeeded === true) {
      return { kind: 'granted', grant: { key: this.key, holder, token: Number(txn.header.revision), id, ttlMs: Number(granted.TTL) * 1000 } }
    }
    // Not ours: the unused etcd lease would expire by itself; revoking it spares etcd the wait.
    await this.revoke(id)
    const kv = txn.responses?.[0]?.response_range?.kvs?.[0]
    // The key went between the compare and the range: nobody holds it now; the next try may win.
    if (kv === undefined) return { kind: 'taken', key: this.key, holder: '', token: 0 }
    return { kind: 'taken', key: this.key, holder: unb64(kv.value), token: Number(kv.create_revision) }
  }

  async read (): Promise<{ holder: string, token: number } | undefined> {
    const r = await this.etcd().call('/v3/kv/range', { key: b64(this.key) })
    const kv = r.kvs?.[0]
    return kv === undefined ? undefined : { holder: unb64(kv.value), token: Number(kv.create_revision) }
  }

  async renew (grant: LeaseGrant): Promise<boolean> {
    const etcd = this.etcd()
    const kept = await etcd.call('/v3/lease/keepalive', { ID: grant.id })
    if (Number(kept.result?.TTL ?? 0) <= 0) return false
    // The lease lives, but the key may have been deleted (by hand) and written by another.
    const key = b64(this.key)
    const txn = await etcd.call('/v3/kv/txn', {
      compare: [
        { key, target: 'CREATE', result: 'EQUAL', create_revision: String(grant.token) },
        { key, target: 'LEASE', result: 'EQUAL', lease: grant.id }
      ],
      success: [],
      failure: []
    })
    return txn.succeeded === true
  }

  async release (grant: LeaseGrant): Promise<void> {
    await this.etcd().call('/v3/lease/revoke', { ID: grant.id }).catch((err) => {
      // Revoking a lease etcd no longer has is what releasing an expired grant means.
      if (!/not found/i.test(errorMessage(err))) throw err
    })
  }

  private async revoke (id: string): Promise<void> {
    await this.etcd().call('/v3/lease/revoke', { ID: id }).catch((err) => this.c.log.debug(`revoking unused etcd lease ${id}: ${errorMessage(err)}`))
  }

  private etcd (): EtcdClient {
    if (this.client === undefined) throw new Error(`lease-etcd (${this.key}) has not started`)
    return this.client
  }
}
