/**
 * An instance's environment and the settings that depend on it: pure.
 *
 * Every instance gets `PORT` (its first port) and `PORT_<NAME>` for each named port,
 * `ORIGIN_HOST` (where to listen), `<NAME>_ADDR`/`_HOST`/`_PORT` for each service it uses
 * (the node's proxy, node/proxy), `ORIGIN_STATE_DIR`, and who it is (`ORIGIN_NODE_ID`,
 * `ORIGIN_SERVICE`, `ORIGIN_INSTANCE`, `ORIGIN_SPEC`, `ORIGIN_API`, `ORIGIN_API_KEY`).
 * `$NAME` and `${NAME}` in args and health settings expand to these and to the service's
 * own env names, so an ordinary program needs no wrapper script (`redis-server --port
 * $PORT`). Other `$` words are left as they are, for a shell to expand.
 */
import type { BindKind, HealthSpec, ServiceSpec } from '../desired/types'
export { hostOf, joinHostPort } from '../address'

export interface InstanceFacts {
  node: string
  service: string
  instance: string
  spec: string
  api: string
  apiKey: string
  /** Ports by name, in the spec's order; the first is PORT. */
  ports: Array<[string, number]>
  /** What the process should listen on (ORIGIN_HOST). */
  listenHost: string
  stateDir: string
  /** The service's env with secrets already read. */
  env: Record<string, string>
  /** The node's loopback addresses for the services it uses (`REDIS_ADDR`, `_HOST`, `_PORT`); the spec's env wins over them. */
  uses?: Record<string, string>
}

export function instanceEnvironment (f: InstanceFacts): Record<string, string> {
  const ports: Record<string, string> = {}
  if (f.ports.length > 0) ports.PORT = String(f.ports[0][1])
  for (const [name, port] of f.ports) ports[`PORT_${name.toUpperCase()}`] = String(port)
  return {
    ...ports,
    ...f.uses,
    ...f.env,
    ORIGIN_HOST: f.listenHost,
    ORIGIN_STATE_DIR: f.stateDir,
    ORIGIN_NODE_ID: f.node,
    ORIGIN_SERVICE: f.service,
    ORIGIN_INSTANCE: f.instance,
    ORIGIN_SPEC: f.spec,
    ORIGIN_API: f.api,
    ORIGIN_API_KEY: f.apiKey
  }
}

/** `$NAME` / `${NAME}` replaced where NAME is in `env`; anything else stays as written. */
export function expandVars (text: string, env: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, braced?: string, bare?: string) => {
    const name = braced ?? bare ?? ''
    return Object.hasOwn(env, name) ? env[name] : whole
  })
}

/** The port names of a service in order: the spec's `ports`, or one called `main`. */
export function portNames (svc: ServiceSpec): string[] {
  return svc.ports === undefined ? ['main'] : Object.keys(svc.ports)
}

/**
 * Where the process listens (ORIGIN_HOST), where health checks and other nodes dial it.
 * `node`: the node's advertised host for all three. `loopback`: 127.0.0.1, reachable on
 * this node only. `any`: 0.0.0.0, dialled on the advertised host.
 */
export function bindHosts (bind: BindKind | undefined, advertisedHost: string): { listen: string, dial: string } {
  if (bind === 'loopback') return { listen: '127.0.0.1', dial: '127.0.0.1' }
  if (bind === 'any') return { listen: '0.0.0.0', dial: advertisedHost }
  return { listen: advertisedHost, dial: advertisedHost }
}

/** The health check as the process manager runs it: ports defaulted to PORT, host to the dial host, settings expanded. */
export function resolveHealth (h: HealthSpec | undefined, env: Record<string, string>, port: number, host: string): (HealthSpec & { host: string }) | undefined {
  if (h === undefined) return undefined
  return {
    ...h,
    host,
    http: h.http === undefined ? undefined : { port: h.http.port ?? port, path: h.http.path === undefined ? undefined : expandVars(h.http.path, env) },
    tcp: h.tcp === undefined ? undefined : { port: h.tcp.port ?? port },
    command: h.command === undefined ? undefined : { command: expandVars(h.command.command, env), args: h.command.args?.map((a) => expandVars(a, env)) }
  }
}
