/**
 * Joining two sockets, and the book of forwarded connections by target instance (for least
 * connections, and to close the ones whose target went away).
 */
import type { Socket } from 'node:net'

/** Pipe `a` and `b` both ways; when either ends badly or closes, the other is closed too. */
export function join (a: Socket, b: Socket): void {
  // Bytes are passed on as they come: the ends decide how to batch, not the proxy.
  a.setNoDelay(true)
  b.setNoDelay(true)
  a.pipe(b)
  b.pipe(a)
  const end = (): void => { a.destroy(); b.destroy() }
  a.once('close', end)
  b.once('close', end)
  a.on('error', end)
  b.on('error', end)
}

export class Connections {
  private readonly byInstance = new Map<string, Set<Socket>>()

  count (instance: string): number { return this.byInstance.get(instance)?.size ?? 0 }

  get total (): number { let n = 0; for (const s of this.byInstance.values()) n += s.size; return n }

  /** Count `socket` against `instance` until it closes. */
  add (instance: string, socket: Socket): void {
    let set = this.byInstance.get(instance)
    if (set === undefined) { set = new Set(); this.byInstance.set(instance, set) }
    set.add(socket)
    socket.once('close', () => {
      set?.delete(socket)
      if (set?.size === 0 && this.byInstance.get(instance) === set) this.byInstance.delete(instance)
    })
  }

  instances (): string[] { return [...this.byInstance.keys()] }

  /** Close every connection to `instance`; returns how many. */
  closeAll (instance: string): number {
    const set = this.byInstance.get(instance)
    if (set === undefined) return 0
    const n = set.size
    for (const s of set) s.destroy()
    this.byInstance.delete(instance)
    return n
  }

  closeEverything (): void { for (const i of this.instances()) this.closeAll(i) }
}
