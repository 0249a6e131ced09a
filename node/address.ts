/** `host:port` addresses as origin writes them: IPv6 hosts in brackets. */
import { networkInterfaces } from 'node:os'

/** The host of `host:port` (`[v6]:port` too). */
export function hostOf (address: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(address)
  return m !== null ? m[1] : address.replace(/:\d+$/, '')
}

/** `host:port`, with brackets for an IPv6 host. */
export function joinHostPort (host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/**
 * An address others can dial for a bound one: a wildcard host (0.0.0.0, ::) becomes this
 * machine's first non-internal address.
 */
export function dialableAddress (bound: string): string {
  const { host, port } = splitAddress(bound)
  if (host !== '0.0.0.0' && host !== '::') return bound
  const external = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && !i.internal && i.family === 'IPv4')
  return `${external?.address ?? '127.0.0.1'}:${port}`
}

/** Host (without brackets) and port of `host:port`. */
export function splitAddress (address: string): { host: string, port: number } {
  const i = address.lastIndexOf(':')
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) }
}
