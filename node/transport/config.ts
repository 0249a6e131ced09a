/**
 * The transport's configuration: every bound in one place, each with the trade-off it
 * controls, validated when a transport is made. What a peer may make a node spend is
 * bounded before the node spends it: bytes per frame, values per frame, nesting, time and
 * slots for connections that have not shown a certificate yet.
 */
import { validator } from '../validate'

export interface TransportInit {
  /** host:port to listen on; port 0 lets the OS pick. */
  listen: string
  /**
   * Largest frame accepted, in bytes. Bigger frames close the connection. Larger allows
   * bigger member tables and log chunks in one frame; smaller bounds what a peer can make
   * us buffer. @default 4 MiB
   */
  maxFrameBytes?: number
  /**
   * Most msgpack values (every map, array, key and scalar counts one) a frame may hold,
   * counted by a scan of the bytes before they are decoded; more closes the connection.
   * Decoding costs about 200 ns and 64 bytes of heap per value whatever the bytes say (4 MiB
   * of empty maps is 4.2 M values: 0.7 s and 270 MB), so this, not the byte limit, bounds
   * the time and memory one frame can take. Real traffic holds about 0.16 values per byte (a
   * member table at the schema's 10,000 members is about 400 k); the default costs at worst
   * about 0.1 s and 34 MB per frame. @default 524288 (2^19)
   */
  maxFrameElements?: number
  /**
   * Deepest nesting of maps and arrays in a frame (the frame itself is level 1; a member
   * table in a gossip frame reaches 6). Deeper closes the connection; it bounds the decoder's
   * recursion. @default 64
   */
  maxFrameDepth?: number
  /** How long a call waits for its answer. @default 5000 */
  callTimeoutMs?: number
  /** How long opening a connection may take (TCP + TLS + websocket upgrade). @default 3000 */
  connectTimeoutMs?: number
  /**
   * How long an inbound connection may go without authenticating (TLS handshake and the
   * websocket upgrade with a valid certificate), and how long each plain HTTPS request on the
   * port (webhooks) may take to be read and answered; after that it is closed. Longer
   * tolerates slower links; shorter frees the slot of a client that sends nothing sooner.
   * Keep it above the peers' `connectTimeoutMs`. @default 5000
   */
  handshakeTimeoutMs?: number
  /**
   * Most inbound connections not yet authenticated, from everywhere. When full, the oldest
   * is dropped to make room: a real peer authenticates in milliseconds, so it always gets a
   * turn, while clients that connect and wait lose their slot. Each costs a file descriptor
   * and some TLS state (tens of kB). @default 256
   */
  maxUnauthenticated?: number
  /**
   * Most inbound connections not yet authenticated from one address (an IPv4 address, an
   * IPv6 /64). Beyond it new ones are refused at once, so one host cannot push everyone
   * else's handshakes out of `maxUnauthenticated`. Peers behind one NAT share it, but each
   * holds a slot only for the milliseconds its handshake takes. @default 32
   */
  maxUnauthenticatedPerAddress?: number
  /**
   * Most inbound connections at once, authenticated or not (Node's `server.maxConnections`);
   * beyond it new ones are closed at once. Authenticated connections need a certificate of
   * this cluster, so only the cluster's own nodes and operators fill it: it must exceed what
   * they open (about one per node per peer plus operators) and stay under the process's file
   * descriptor limit (`ulimit -n`). @default 4096
   */
  maxConnections?: number
  /**
   * Refused connections are logged as a summary per this interval: the first of each kind
   * in full, then "refused N more connections in the last 10 s: ..." while they go on.
   * Shorter tells sooner; longer writes fewer lines. @default 10000
   */
  refusalLogIntervalMs?: number
}

export type TransportConfig = Required<TransportInit>

export const transportDefaults: Omit<TransportConfig, 'listen'> = {
  maxFrameBytes: 4 << 20,
  maxFrameElements: 1 << 19,
  maxFrameDepth: 64,
  callTimeoutMs: 5000,
  connectTimeoutMs: 3000,
  handshakeTimeoutMs: 5000,
  maxUnauthenticated: 256,
  maxUnauthenticatedPerAddress: 32,
  maxConnections: 4096,
  refusalLogIntervalMs: 10_000
}

/**
 * What an error frame we send may carry, whatever the error: the code is kept, the message
 * and caller are cut to these lengths and data that encodes larger than `dataBytes` is
 * replaced by its small fields. An error about a huge payload is then still small (an
 * invalid 9,000-member gossip once answered with an 18 MB error frame). Not configurable:
 * `maxFrameBytes` has a floor above their sum.
 */
export const errorFrameBounds = { messageChars: 2000, callerChars: 200, dataBytes: 16 << 10 }

/**
 * How long a stopping transport waits for its peers to answer its closes before it drops the
 * connections: long enough for a loaded peer on a LAN, short enough not to slow a restart.
 */
export const CLOSE_GRACE_MS = 500

/**
 * The close grace, on real time on purpose: it bounds waiting for I/O (peers answering a
 * close), and a stop must end even when nothing moves a virtual clock any more.
 */
export async function closeGrace (): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS))
}

const int = (minimum: number, maximum: number) => ({ type: 'integer', minimum, maximum })

const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: { type: 'string', minLength: 3, maxLength: 300 },
    maxFrameBytes: int(64 << 10, 1 << 30),
    maxFrameElements: int(1000, 1 << 28),
    maxFrameDepth: int(8, 1000),
    callTimeoutMs: int(1, 86_400_000),
    connectTimeoutMs: int(1, 86_400_000),
    handshakeTimeoutMs: int(100, 600_000),
    maxUnauthenticated: int(1, 1_000_000),
    maxUnauthenticatedPerAddress: int(1, 1_000_000),
    maxConnections: int(1, 10_000_000),
    refusalLogIntervalMs: int(100, 3_600_000)
  }
}
const checkConfig = validator<Partial<TransportConfig>>(configSchema, 'transport config', 'E_CONFIG_INVALID')

function withDefaults (init: Partial<TransportInit>): Partial<TransportConfig> {
  const defined = Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined))
  return checkConfig({ ...transportDefaults, ...defined })
}

/** `init` with the defaults filled in, or E_CONFIG_INVALID naming the field. */
export function transportConfig (init: TransportInit): TransportConfig {
  return withDefaults(init) as TransportConfig
}

/** The same for a client that only dials (no `listen`). */
export function clientConfig (init: Partial<Omit<TransportInit, 'listen'>>): Omit<TransportConfig, 'listen'> {
  return withDefaults(init) as Omit<TransportConfig, 'listen'>
}
