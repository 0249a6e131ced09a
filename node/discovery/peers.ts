/**
 * Pure helpers for peer lists: parse a peers file (one `host:port` a line, `#` comments),
 * normalize and compare lists. No I/O.
 */

// As image.json's hostPort: a port from 0 to 65535, an IPv6 host in brackets.
const port = '([0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])'
const hostPortRe = new RegExp(`^(\\[[0-9a-fA-F:.]+\\]|[^:\\s\\[\\]#]+):${port}$`)

/** The most addresses one method may yield: a huge file or record set cannot flood the node with dials. */
export const MAX_PEERS = 1000

export function isHostPort (s: string): boolean {
  return hostPortRe.test(s)
}

export { joinHostPort } from '../address'

export interface ParsedPeers {
  peers: string[]
  /** Lines that are not `host:port`, by line number (1-based), for the log. */
  bad: Array<{ line: number, text: string }>
}

/**
 * A peers file: one `host:port` per line; blank lines and `#` comments (whole-line or
 * after an address) are ignored; duplicates are kept once; at most MAX_PEERS addresses.
 */
export function parsePeersFile (text: string): ParsedPeers {
  const peers: string[] = []
  const bad: ParsedPeers['bad'] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const entry = lines[i].replace(/#.*$/, '').trim()
    if (entry === '') continue
    if (!isHostPort(entry)) bad.push({ line: i + 1, text: entry.length > 100 ? `${entry.slice(0, 100)}...` : entry })
    else if (peers.length < MAX_PEERS && !peers.includes(entry)) peers.push(entry)
  }
  return { peers, bad }
}

/** The union of several lists, each address once, in first-seen order. */
export function mergePeers (lists: string[][]): string[] {
  return [...new Set(lists.flat())]
}

export function samePeers (a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false
  const s = new Set(a)
  return b.every((x) => s.has(x))
}
