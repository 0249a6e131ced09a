/**
 * The spec's shapes: what an operator writes in `cluster.json|ts` and `services/*.json|ts`,
 * and the validated `Spec` the other layers consume. `schema.ts` declares the JSON Schemas
 * against these types with ajv's `JSONSchemaType`, so the two cannot drift apart.
 */
import type { HubPolicy, RankKey } from '../hubs/policy'

/** The files of one spec version: repo-relative POSIX paths to contents. */
export type SpecFiles = Map<string, Buffer>

/** What the cluster does to running workloads while fewer than `minNodes` members are alive. */
export type BelowMinNodes = 'pause' | 'stop' | 'keep'

/** `cluster.json` / `cluster.ts`: the cluster as a whole. */
export interface ClusterSpec {
  /** The cluster's name; should match the `cluster` of the nodes' image.json. */
  name: string
  /** Alive members needed before any service runs (phase `forming` until then). @default 1 */
  minNodes?: number
  /**
   * Below `minNodes` after having run: `pause` (SIGSTOP, resume on recovery), `stop` (stop
   * the processes), or `keep` (leave them running). @default 'pause'
   */
  belowMinNodes?: BelowMinNodes
  /** Hub policy; each field falls back to the default hub policy. */
  hubs?: HubsSpec
  /** Certificate serials (hex, colons allowed) refused at the TLS handshake. @default [] */
  revokedSerials?: string[]
  /**
   * The largest next commit nodes take, all files together, in MiB: a bigger one is
   * rejected naming its largest files (the applied spec's value judges the next commit).
   * @default 64
   */
  maxCommitMb?: number
  /** What operators (by certificate name) may do beyond reading: `eval` runs code on nodes. @default {} */
  operators?: OperatorsSpec
  /**
   * How dead members are removed with no operator command, so a cluster that loses
   * machines by crashes shrinks (see node/membership/downing.ts). @default keep-majority,
   * afterMs 3 × the nodes' deadAfterMs
   */
  downing?: DowningSpec
  /**
   * The same as `downing`, in the form issue contracts name:
   * `{ "downAfterMs": N, "strategy": ..., "quorum": N }`. Give one of the two.
   */
  membership?: MembershipSpec
}

/** `cluster.json` `membership`: downing settings under their contract names. */
export interface MembershipSpec {
  strategy?: DowningSpec['strategy']
  /** Stable time before the dead are downed, ms (`downing.afterMs`). */
  downAfterMs?: number
  quorum?: number
}

/**
 * Downing, after Akka's split brain resolver: once the membership has been unchanged for
 * `afterMs` with members dead and none suspect, the side the strategy picks makes the dead
 * `left` (they stop counting against the singleton majority); the other side downs nobody.
 */
export interface DowningSpec {
  /**
   * `keep-majority`: the side with more than half of the membership (or half, with the
   * lowest id). `static-quorum`: a side with at least `quorum` members (downs nobody once
   * the membership reaches twice the quorum). `keep-oldest`: the side with the member
   * started first. `lease`: the side whose node holds the lease (image.json
   * `layers.lease`, e.g. plugins/lease-etcd), the only one that lets a 2-node cluster go
   * on with either node. @default 'keep-majority'
   */
  strategy?: 'keep-majority' | 'static-quorum' | 'keep-oldest' | 'lease'
  /** Stable time before the dead are downed, ms; keep it well above deadAfterMs. @default 3 × deadAfterMs */
  afterMs?: number
  /** Members a side needs, for `static-quorum` (required by it). */
  quorum?: number
}

/** Operators allowed each privileged action, by the CN of their certificate. */
export interface OperatorsSpec {
  /** May `cluster.on(node).eval(code)` / `cluster.each(code)`. @default [] (nobody) */
  eval?: string[]
}

/** The hub policy as written; see `HubPolicy` for what each field controls. */
export interface HubsSpec {
  /** How many hubs. @default 3 */
  count?: number
  /** Ranking keys, strongest first. @default ['memory', 'cpus', 'uptime', 'id'] */
  ranking?: RankKey[]
  /** Hysteresis margin on memory (0.1 = 10 %). @default 0.1 */
  memoryMargin?: number
}

/** `ClusterSpec` with every default filled in; what `Spec.cluster` holds. */
export interface ResolvedClusterSpec {
  /** The cluster's name. */
  name: string
  /** Alive members needed before any service runs. */
  minNodes: number
  /** What happens to running workloads below `minNodes`. */
  belowMinNodes: BelowMinNodes
  /** The complete hub policy. */
  hubs: HubPolicy
  /** Revoked serials, lower-case hex without colons (as node-forge prints them). */
  revokedSerials: string[]
  /** The largest next commit taken, in MiB. */
  maxCommitMb: number
  /** Operators allowed each privileged action; absent: nobody may. */
  operators?: { eval: string[] }
  /** Downing as written; absent: the membership layer's default. */
  downing?: DowningSpec
}

export type PlacementKind = 'every' | 'hubs' | 'singleton' | 'replicas'

/** `services/<name>.json|ts`: one service. The file name (without extension) is its name. */
export interface ServiceSpec {
  /** The process to run. */
  run: RunSpec
  /** Where the code comes from. Absent: the spec repo itself is the code root. */
  code?: CodeSpec
  /** Which members run instances. */
  placement: PlacementSpec
  /** Limits per instance and per node. */
  resources?: ResourcesSpec
  /** How the supervisor tells a healthy instance from a sick one. At most one check kind. */
  health?: HealthSpec
  /** What happens when the process exits. */
  restart?: RestartSpec
  /** Time between SIGTERM and SIGKILL when an instance stops. @default 10000 (node/supervisor/policy.ts serviceDefaults) */
  stopGraceMs?: number
  /**
   * Spec-repo paths (files, or folders ending in `/`) the service's code is made of: only
   * these are written into its code tree, and only a change to them (or to this file's
   * run/health/resources/... fields) restarts it. @default [`services/<name>/`]
   */
  paths?: string[]
  /**
   * Named ports, each given to the process as `PORT_<NAME>` (upper-case); `PORT` is the
   * first. A port is picked free on the node and kept across restarts where possible;
   * `port` pins it. @default { "main": {} } (just `PORT`)
   */
  ports?: Record<string, PortSpec>
  /**
   * Where the process is expected to listen, which health checks dial and other nodes are
   * told: `node` (the node's advertised host), `loopback` (127.0.0.1, reachable on this node
   * only) or `any` (0.0.0.0; dialled on the advertised host). Given as `ORIGIN_HOST`.
   * @default 'node'
   */
  bind?: BindKind
  /** What happens to the instance's state directory (`ORIGIN_STATE_DIR`) when it moves. @default { mode: 'local' } */
  state?: StateSpec
  /**
   * Services this one reaches, each as `name` or `name:port` (a named port of it; default
   * its first). Each instance gets `<NAME>_ADDR=127.0.0.1:PORT` plus `<NAME>_HOST` and
   * `<NAME>_PORT` (upper-cased, non-alphanumerics as `_`): a loopback address on its own
   * node that forwards each connection to a ready instance of that service, anywhere in
   * the cluster, over the nodes' mutual TLS. @default []
   */
  uses?: string[]
  /** A port nodes listen on and forward to ready instances anywhere (a routing mesh). */
  publish?: PublishSpec
  /**
   * Keyed routing for a published HTTP port: every request with the same key goes to the
   * same ready instance (rendezvous hashing over the ready instances).
   */
  route?: RouteSpec
  /** Limits per instance on a published HTTP port; beyond them a 503 says why. */
  admission?: AdmissionSpec
}

export interface RouteSpec {
  /** Where the key is: a request header, or a path segment (0 is the first after `/`). Exactly one. */
  key: { header?: string, pathSegment?: number }
}

export interface AdmissionSpec {
  /** Most requests in flight to one instance through one node; more are answered 503 with Retry-After. */
  maxInFlight?: number
  /**
   * With `route.key`: most distinct keys one instance holds, counted by each node over the
   * requests it forwards; a key is held until `keyIdleMs` (60 s) pass without a request with
   * it. A new key beyond the limit is answered 503 with Retry-After; held keys still get in.
   */
  maxKeys?: number
}

export interface PublishSpec {
  /** The port, on each publishing node's advertised host. */
  port: number
  /** Which nodes listen: `every` member, `hubs`, or members with these labels. @default 'every' */
  on?: 'every' | 'hubs' | Record<string, string>
  /** The named port of the service to reach. @default its first */
  target?: string
  /**
   * HTTP mode: requests are forwarded one by one with `X-Forwarded-For`, and answered 503
   * (with `Retry-After`) when no instance is ready. @default false (plain TCP)
   */
  http?: boolean
}

export type BindKind = 'node' | 'loopback' | 'any'

export interface PortSpec {
  /** A fixed port instead of a free one (two instances on one node then collide). */
  port?: number
}

/**
 * `local`: the directory stays on the node it was written on; an instance that moves starts
 * empty there (and says so). `migrate`: on a graceful move the directory is copied over the
 * mesh to the new node before the instance starts. `replicate`: the directory is
 * snapshotted every `intervalMs` and copied to `copies` other nodes; after a failover the
 * new instance starts from the freshest snapshot (at most one interval old).
 */
export type StateMode = 'local' | 'migrate' | 'replicate'

export interface StateSpec {
  mode: StateMode
  /** replicate: time between snapshots. @default 30000 */
  intervalMs?: number
  /** replicate: how many other nodes keep a copy. @default 2 */
  copies?: number
  /**
   * replicate (and migrate): a command run in the instance's code dir, with its environment,
   * before each copy, so the copy is consistent (e.g. `redis-cli -p $PORT SAVE`). A failing
   * hook skips that snapshot and says so.
   */
  before?: { command: string, args?: string[], timeoutMs?: number }
}

/** An env value read from a file of the image's `secrets/` folder instead of the spec. */
export interface SecretRef { secret: string }

export interface RunSpec {
  /** The executable, looked up on PATH (e.g. `node`). Exactly one of `command` and `image`. */
  command?: string
  /**
   * Run the service as Docker containers from this image instead of a host process: a name
   * already on the node (`"redis:7"`, the same as `{ "ref": "redis:7" }`), or
   * `{ "load": "<docker save tarball in the code tree>" }`, or `{ "build": { "dockerfile": "Dockerfile" } }`
   * (built from the code tree, once per code version); `ref` with load/build names the
   * result. The node needs a Docker engine (README "Containers").
   */
  image?: string | ImageRunSpec
  /** Its arguments (for an image: the container's command, after the image's entrypoint; none keeps the image's CMD). @default [] */
  args?: string[]
  /**
   * Extra environment variables: a string, or `{ "secret": "name" }` for the contents of
   * the image's `secrets/name` file (secrets do not belong in git). `$VAR` / `${VAR}` in
   * `args` (and health settings) expand to these and to `PORT*` / `ORIGIN_*`. @default {}
   */
  env?: Record<string, string | SecretRef>
  /** Working directory, relative to the code root. Commands only: a container works in its image's WORKDIR. @default '.' */
  cwd?: string
}

/** Where a container service's image comes from (node/runtime/images.ts). */
export interface ImageRunSpec {
  /** A name on the node; with load or build, the name given to the result. */
  ref?: string
  /** A `docker save` tarball, a path in the code tree. */
  load?: string
  /** Built from the code tree with this Dockerfile (a path in it). */
  build?: { dockerfile?: string }
}

export interface CodeSpec {
  /** An http(s) git URL. */
  repo: string
  /** Branch, tag or commit to check out. @default the remote's HEAD */
  ref?: string
  /** A shell command run once per checked-out commit, in the code root (e.g. `npm ci`). */
  build?: string
}

export interface PlacementSpec {
  /**
   * `every` alive member, `hubs` only, a `singleton` (on the majority side of a partition),
   * or `replicas` (`count` instances spread over members).
   */
  kind: PlacementKind
  /** Number of instances; required for `replicas`, not allowed for other kinds. */
  count?: number
  /** Members must carry all these labels with these values. @default {} */
  labels?: Record<string, string>
  /** Members must have at least this many cpus. */
  minCpus?: number
  /** Members must have at least this much memory. */
  minMemoryMb?: number
  /** Members must have this architecture (as `process.arch` names it: `x64`, `arm64`, ...). */
  arch?: string
}

export interface ResourcesSpec {
  /** Memory limit per instance. */
  memoryMb?: number
  /** At most this many instances of the service on one member. @default 1 */
  maxInstancesPerNode?: number
  /**
   * Containers only: the instance's CPU weight against others when the CPU is contended
   * (the engine's CpuShares; 1024 is an even share). Nothing is capped while the CPU is free.
   * @default the engine's (1024)
   */
  cpuShares?: number
  /** Containers only: at most this many CPUs' time (the engine's NanoCpus, e.g. 0.5). @default no cap */
  cpus?: number
}

export interface HealthSpec {
  /** Healthy when GET http://127.0.0.1:port/path answers 2xx or 3xx. @default port: the instance's PORT */
  http?: { port?: number, path?: string }
  /** Healthy when a TCP connection to 127.0.0.1:port opens. @default port: the instance's PORT */
  tcp?: { port?: number }
  /** Healthy when the command exits with status 0. */
  command?: { command: string, args?: string[] }
  /** Time between checks; paces rollouts (a step waits for ready). @default 2000 (node/supervisor/policy.ts serviceDefaults) */
  intervalMs?: number
  /** A check slower than this failed. @default 1000 (node/supervisor/policy.ts serviceDefaults) */
  timeoutMs?: number
  /** Failures during this time after start do not count. @default 0 (node/supervisor/policy.ts serviceDefaults) */
  startPeriodMs?: number
}

export interface RestartSpec {
  /** Restart `always`, `on-failure` (non-zero exit or signal), or `never`. */
  policy: 'always' | 'on-failure' | 'never'
  /** First delay before a restart; doubles on each consecutive failure. @default 500 (node/supervisor/policy.ts serviceDefaults) */
  backoffMs?: number
  /** Upper bound of the doubling delay. @default 30000 (node/supervisor/policy.ts serviceDefaults) */
  maxBackoffMs?: number
}

/** One validated spec version. */
export interface Spec {
  /** The cluster with defaults filled in. */
  cluster: ResolvedClusterSpec
  /** Services by name, sorted by name. */
  services: Record<string, ServiceSpec>
  /** REPL helpers: `ops/*.ts` path to source. Not evaluated by the loader. */
  ops: Record<string, string>
  /** Paths of the files under `plugins/`, sorted. */
  plugins: string[]
}

/** What is wrong with one spec file, and where. */
export interface SpecError {
  /** Repo-relative path of the file. */
  file: string
  /** 1-based line, when known. */
  line?: number
  /** 1-based column, when known. */
  column?: number
  /** JSON pointer into the file's value, e.g. `/placement/count`. */
  path?: string
  /** What is wrong, for a person. */
  message: string
}

/** `services/web.json:/placement/kind: must be ...` or `cluster.ts:12:5: ...`. */
export function formatSpecError (e: SpecError): string {
  let where = e.file
  if (e.line !== undefined) where += `:${e.line}` + (e.column !== undefined ? `:${e.column}` : '')
  if (e.path !== undefined && e.path !== '') where += `:${e.path}`
  return `${where}: ${e.message}`
}
