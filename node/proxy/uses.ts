/**
 * `uses`: for each service an instance's service uses, a loopback listener whose
 * connections are forwarded to a ready instance of it (this node's own first). Only this
 * node's own instances (and the node's own user) may connect: the client socket's uid
 * (procfs) must be the node's or one of its instances'. A use no service declares any more
 * has its listener closed.
 */
import { stat } from 'node:fs/promises'
import net, { type AddressInfo, type Server, type Socket } from 'node:net'
import { parseUse, useEnv, type Use } from './names'
import type { ProxyParts } from './parts'
import { loopbackPeerUid } from './peercred'
import type { Relay } from './relay'
import { listen } from './sockets'

const LOOPBACK = '127.0.0.1'

/** The uids of this node's instances are looked up again at most this often. */
const UID_REFRESH_MS = 500

interface UseListener { use: Use, server: Server, port: number }

export class UseListeners {
  private readonly listeners = new Map<string, Promise<UseListener>>()
  private allowedUids = new Set<number>()
  private uidsAt = -Infinity

  constructor (private readonly p: ProxyParts, private readonly relay: Relay) {}

  /** The `*_ADDR` / `*_HOST` / `*_PORT` variables for an instance of `service` (listeners opened as needed). */
  async addressesFor (service: string): Promise<Record<string, string>> {
    const svc = this.p.c.spec.current()?.spec.services[service]
    const out: Record<string, string> = {}
    for (const text of svc?.uses ?? []) {
      const l = await this.listener(parseUse(text))
      Object.assign(out, useEnv(l.use, LOOPBACK, l.port))
    }
    return out
  }

  /** A use no service of the applied spec declares any more: its listener closes. */
  async closeUnused (): Promise<void> {
    const applied = this.p.c.spec.current()
    if (applied === undefined) return
    const declared = new Set(Object.values(applied.spec.services).flatMap((svc) => svc.uses ?? []))
    for (const [key, p] of this.listeners) {
      if (declared.has(key)) continue
      this.listeners.delete(key)
      const l = await p.catch(() => undefined)
      l?.server.close()
      if (l !== undefined) this.p.c.log.info(`uses ${key}: no service uses it any more; ${LOOPBACK}:${l.port} closed`)
    }
  }

  /** Forgets every listener; returns their servers, for the caller to close. */
  async takeAll (): Promise<Server[]> {
    const all = [...this.listeners.values()]
    this.listeners.clear()
    const opened = await Promise.all(all.map(async (p) => await p.catch(() => undefined)))
    return opened.flatMap((l) => l === undefined ? [] : [l.server])
  }

  private async listener (use: Use): Promise<UseListener> {
    let p = this.listeners.get(use.key)
    if (p === undefined) {
      p = (async () => {
        const server = net.createServer((socket) => { void this.accept(use, socket, server) })
        await listen(server, 0, LOOPBACK)
        const port = (server.address() as AddressInfo).port
        this.p.c.log.info(`uses ${use.key}: listening on ${LOOPBACK}:${port} for this node's instances`)
        return { use, server, port }
      })()
      this.listeners.set(use.key, p)
      p.catch(() => this.listeners.delete(use.key))
    }
    return await p
  }

  /** The uid check (procfs, milliseconds on a busy host) runs while the upstream connection opens. */
  private async accept (use: Use, socket: Socket, server: Server): Promise<void> {
    socket.on('error', () => {})
    const serverPort = (server.address() as AddressInfo).port
    const allowed = loopbackPeerUid(socket.remotePort ?? 0, serverPort).then(async (uid) => {
      if (uid === undefined || await this.isOwnUid(uid)) return true
      this.p.c.log.warn(`uses ${use.key}: refused a connection from uid ${uid} (not this node's nor one of its instances')`)
      return false
    })
    await this.relay.forward(use.service, use.port, socket, `uses ${use.key}`, true, allowed)
  }

  private async isOwnUid (uid: number): Promise<boolean> {
    if (uid === process.getuid?.()) return true
    if (this.allowedUids.has(uid)) return true
    // A new instance (or a new uid): look again, not more often than UID_REFRESH_MS.
    const { clock, c } = this.p
    if (clock.now() - this.uidsAt < UID_REFRESH_MS || c.usage === undefined) return false
    this.uidsAt = clock.now()
    const pids = Object.values(await c.usage()).flatMap((u) => u.pids)
    const uids = await Promise.all(pids.map(async (pid) => (await stat(`/proc/${pid}`).catch(() => undefined))?.uid))
    this.allowedUids = new Set(uids.filter((u): u is number => u !== undefined))
    return this.allowedUids.has(uid)
  }
}
