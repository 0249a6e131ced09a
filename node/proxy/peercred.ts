/**
 * Who opened a loopback TCP connection to us: the uid owning the client's socket and the
 * socket's inode, from /proc/net/tcp (Linux; the line whose local port is the client's and
 * whose remote port is ours), and which process holds that socket. Undefined where procfs
 * is missing or the socket is gone already.
 */
import { readFile, readdir, readlink } from 'node:fs/promises'

export interface LoopbackPeer { uid: number, inode: number }

export async function loopbackPeer (clientPort: number, serverPort: number): Promise<LoopbackPeer | undefined> {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '')
    const peer = peerIn(text, clientPort, serverPort)
    if (peer !== undefined) return peer
  }
  return undefined
}

export async function loopbackPeerUid (clientPort: number, serverPort: number): Promise<number | undefined> {
  return (await loopbackPeer(clientPort, serverPort))?.uid
}

/** Which of `pids` has the socket `inode` open (one of its file descriptors), or undefined. */
export async function holderOf (inode: number, pids: number[]): Promise<number | undefined> {
  const link = `socket:[${inode}]`
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])
    for (const fd of fds) if (await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '') === link) return pid
  }
  return undefined
}

/** Pure: the uid column of the line with local port `clientPort` and remote port `serverPort`. */
export function uidIn (procNetTcp: string, clientPort: number, serverPort: number): number | undefined {
  return peerIn(procNetTcp, clientPort, serverPort)?.uid
}

/** Pure: the uid and inode columns of that line. */
export function peerIn (procNetTcp: string, clientPort: number, serverPort: number): LoopbackPeer | undefined {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')
  // Found by string search, not by splitting every line: a busy host has thousands.
  const needle = new RegExp(`^\\s*\\d+: [0-9A-F]+:${hex(clientPort)} [0-9A-F]+:${hex(serverPort)} .*$`, 'm')
  const line = needle.exec(procNetTcp)?.[0]
  if (line === undefined) return undefined
  const f = line.trim().split(/\s+/)
  return f.length >= 10 ? { uid: Number(f[7]), inode: Number(f[9]) } : undefined
}
