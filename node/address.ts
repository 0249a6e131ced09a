/** `host:port` addresses as origin writes them: IPv6 hosts in brackets. */

/** The host of `host:port` (`[v6]:port` too). */
export function hostOf (address: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(address)
  return m !== null ? m[1] : address.replace(/:\d+$/, '')
}

/** `host:port`, with brackets for an IPv6 host. */
export function joinHostPort (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
