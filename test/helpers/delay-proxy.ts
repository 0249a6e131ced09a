/**
 * A TCP proxy that holds every chunk `delayMs` before passing it on, both ways, in order:
 * a slow link or a slow peer, since this kernel has no netem. Listens on a loopback address
 * of its own; `close()` ends it and every connection through it.
 */
import net from 'node:net'
import { freeAddress } from './cluster'

export interface DelayProxy {
  /** HOST:PORT to dial instead of the target. */
  address: string
  /** From now on, chunks are held this long (0: passed on at once, after those still held). */
  setDelay: (ms: number) => void
  close: () => Promise<void>
}

/** Writes what `from` sends to `to`, each chunk `delayMs()` late; ends `to` after the last one. */
function pipeLate (from: net.Socket, to: net.Socket, delayMs: () => number): void {
  let last = Promise.resolve()
  const late = async (): Promise<void> => await new Promise((resolve) => setTimeout(resolve, delayMs()))
  from.on('data', (chunk) => { last = last.then(late).then(() => { if (!to.destroyed) to.write(chunk) }) })
  from.on('end', () => { void last.then(() => to.end()) })
  from.on('error', () => to.destroy())
}

export async function startDelayProxy (target: string, delayMs: number): Promise<DelayProxy> {
  const [host, port] = target.split(':')
  const sockets = new Set<net.Socket>()
  let delay = delayMs
  const server = net.createServer((inbound) => {
    const outbound = net.connect({ host, port: Number(port) })
    for (const s of [inbound, outbound]) { sockets.add(s); s.once('close', () => sockets.delete(s)) }
    pipeLate(inbound, outbound, () => delay)
    pipeLate(outbound, inbound, () => delay)
  })
  const address = await freeAddress()
  const [listenHost, listenPort] = address.split(':')
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(Number(listenPort), listenHost, resolve) })
  return {
    address,
    setDelay: (ms) => { delay = ms },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
