/**
 * Pooled connections by address, shared by every transport: one open connection per
 * address, reused while open, reopened when closed; concurrent askers share one opening.
 */
import type { Connection } from './types'

export class ConnectionPool {
  private readonly pool = new Map<string, Promise<Connection>>()

  constructor (private readonly open: (address: string) => Promise<Connection>) {}

  async get (address: string): Promise<Connection> {
    const cached = this.pool.get(address)
    if (cached !== undefined) {
      const conn = await cached.catch(() => undefined)
      if (conn?.isOpen === true) return conn
      if (this.pool.get(address) !== cached) return await this.get(address) // someone reopened it meanwhile
    }
    const opening = this.open(address)
    this.pool.set(address, opening)
    const forget = (): void => { if (this.pool.get(address) === opening) this.pool.delete(address) }
    opening.then((conn) => conn.once('close', forget), forget)
    return await opening
  }

  clear (): void { this.pool.clear() }
}
