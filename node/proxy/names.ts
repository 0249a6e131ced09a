/**
 * Pure: what a `uses` entry means, and the environment names it gives.
 * `"redis"` -> service redis, its first port, `REDIS_ADDR` / `REDIS_HOST` / `REDIS_PORT`;
 * `"api:admin"` -> service api, port `admin`, `API_ADMIN_ADDR` / ...
 */

export interface Use {
  /** As written: `redis`, `api:admin`. */
  key: string
  service: string
  /** A named port of the service; undefined for its first. */
  port?: string
  /** The variable prefix: `REDIS`, `API_ADMIN`. */
  prefix: string
}

export function parseUse (text: string): Use {
  const i = text.indexOf(':')
  const service = i < 0 ? text : text.slice(0, i)
  const port = i < 0 ? undefined : text.slice(i + 1)
  return { key: text, service, port, prefix: text.toUpperCase().replace(/[^A-Z0-9]/g, '_') }
}

/** `<PREFIX>_ADDR`, `_HOST`, `_PORT` for a loopback listener at `host:port`. */
export function useEnv (use: Use, host: string, port: number): Record<string, string> {
  return { [`${use.prefix}_ADDR`]: `${host}:${port}`, [`${use.prefix}_HOST`]: host, [`${use.prefix}_PORT`]: String(port) }
}
