/** Listening and connecting as promises: an error rejects instead of being emitted. */
import net, { type Server, type Socket } from 'node:net'

export async function listen (server: Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
}

export async function connectTcp (host: string, port: number): Promise<Socket> {
  return await new Promise((resolve, reject) => {
    const s = net.connect({ host, port })
    s.once('connect', () => { s.off('error', reject); resolve(s) })
    s.once('error', reject)
  })
}
