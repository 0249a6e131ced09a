/**
 * Who opened a loopback TCP connection to us: the uid owning the client's socket, from
 * /proc/net/tcp (Linux; the line whose local port is the client's and whose remote port is
 * ours). Undefined where procfs is missing or the socket is gone already.
 */
import { readFile } from 'node:fs/promises'

export async function loopbackPeerUid (clientPort: number, serverPort: number): Promise<number | undefined> {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '')
    const uid = uidIn(text, clientPort, serverPort)
    if (uid !== undefined) return uid
  }
  return undefined
}

/** Pure: the uid column of the line with local port `clientPort` and remote port `serverPort`. */
export function uidIn (procNetTcp: string, clientPort: number, serverPort: number): number | undefined {
  const local = `:${clientPort.toString(16).toUpperCase().padStart(4, '0')}`
  const remote = `:${serverPort.toString(16).toUpperCase().padStart(4, '0')}`
  for (const line of procNetTcp.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length < 8) continue
    if (f[1].endsWith(local) && f[2].endsWith(remote)) return Number(f[7])
  }
  return undefined
}
