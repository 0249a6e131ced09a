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
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')
  // Found by string search, not by splitting every line: a busy host has thousands.
  const needle = new RegExp(`^\\s*\\d+: [0-9A-F]+:${hex(clientPort)} [0-9A-F]+:${hex(serverPort)} .*$`, 'm')
  const line = needle.exec(procNetTcp)?.[0]
  if (line === undefined) return undefined
  const f = line.trim().split(/\s+/)
  return f.length >= 8 ? Number(f[7]) : undefined
}
