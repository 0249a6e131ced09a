/**
 * Counting this process's open TCP connections to given addresses, from /proc (Linux):
 * how stats sees the mesh connections a node opened to its peers, without asking the
 * transport for its pool. Elsewhere the count is unknown (undefined).
 *
 * @example
 *   await connectionsTo(['127.0.0.2:7400', 'node-b.lan:7400'])   // 2
 */
import { readdir, readFile, readlink } from 'node:fs/promises'
import { isIP } from 'node:net'

/** TCP_ESTABLISHED in /proc/net/tcp's `st` column. */
const ESTABLISHED = '01'
/** On real time: it caches the host's resolver, whose answers age in real time. */
const RESOLVE_TTL_MS = 60_000
const resolved = new Map<string, { at: number, ips: Promise<string[]> }>()

/** Established connections of this process whose remote end is one of `addresses` (host:port). */
export async function connectionsTo (addresses: string[]): Promise<number | undefined> {
  let lines: string[]
  try {
    lines = (await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map(async (f) => await readFile(f, 'utf8').catch(() => '')))).join('\n').split('\n')
  } catch {
    return undefined
  }
  if (lines.every((l) => l.trim() === '')) return undefined
  const mine = await ownSockets()
  if (mine === undefined) return undefined
  const targets = new Set((await Promise.all(addresses.map(endpoints))).flat())
  let count = 0
  for (const line of lines) {
    const f = line.trim().split(/\s+/)
    if (f.length < 10 || f[3] !== ESTABLISHED || !mine.has(f[9]!)) continue
    const remote = parseEndpoint(f[2]!)
    if (remote !== undefined && targets.has(remote)) count++
  }
  return count
}

/** Socket inodes this process holds open. */
async function ownSockets (): Promise<Set<string> | undefined> {
  let fds: string[]
  try {
    fds = await readdir('/proc/self/fd')
  } catch {
    return undefined
  }
  const links = await Promise.all(fds.map(async (fd) => await readlink(`/proc/self/fd/${fd}`).catch(() => '')))
  return new Set(links.flatMap((l) => { const m = /^socket:\[(\d+)\]$/.exec(l); return m === null ? [] : [m[1]!] }))
}

/** `host:port` -> the `ip:port` forms /proc shows for it (a name is resolved, cached for a minute). */
async function endpoints (address: string): Promise<string[]> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address)
  if (m === null) return []
  const [, host, port] = m as unknown as [string, string, string]
  if (isIP(host) !== 0) return [`${normalizeIp(host)}:${Number(port)}`]
  let entry = resolved.get(host)
  if (entry === undefined || Date.now() - entry.at > RESOLVE_TTL_MS) {
    // dns/promises loads on the first name to resolve, not with every node.
    entry = { at: Date.now(), ips: (require('node:dns/promises') as typeof import('node:dns/promises')).lookup(host, { all: true }).then((r) => r.map((a) => a.address), () => []) }
    resolved.set(host, entry)
  }
  return (await entry.ips).map((ip) => `${normalizeIp(ip)}:${Number(port)}`)
}

/** `0100007F:1CE8` (little-endian words) -> `127.0.0.1:7400`; IPv4-mapped IPv6 as IPv4. */
export function parseEndpoint (hex: string): string | undefined {
  const [ip, port] = hex.split(':')
  if (ip === undefined || port === undefined) return undefined
  const bytes: number[] = []
  for (let w = 0; w < ip.length; w += 8) {
    const word = ip.slice(w, w + 8)
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16))
  }
  const p = parseInt(port, 16)
  if (bytes.length === 4) return `${bytes.join('.')}:${p}`
  if (bytes.length !== 16) return undefined
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff
  if (mapped) return `${bytes.slice(12).join('.')}:${p}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return `${groups.join(':')}:${p}`
}

/** An IP as parseEndpoint writes it: IPv4 as is, IPv6 as 8 unpadded lowercase groups. */
export function normalizeIp (ip: string): string {
  if (isIP(ip) !== 6) return ip
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (v4 !== null) return v4[1]!
  const [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined]
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  return groups.map((g) => parseInt(g, 16).toString(16)).join(':')
}
