/**
 * The words every layer shares, each defined once: what a node id may be, who may dial
 * (roles), the keys hubs are ranked by, the one spelling of a certificate serial, and the
 * order of instance ids, and how an instance's state reads through its member's status.
 * Pure: no I/O, no clock.
 *
 *   isNodeId('edge-1')                         // true
 *   normalizeSerial('0a:11')                   // '0A11'
 *   ['web-10', 'web-2'].sort(compareInstances) // ['web-2', 'web-10']
 */
import { OriginError } from './errors'

/**
 * A node id: 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or
 * digit. It names files (`logs/<node>/...`) and is a DNS label's worth, so no other
 * characters; lower case only, so two ids never differ by case alone.
 */
export const NODE_ID_SOURCE = '^[a-z0-9][a-z0-9._-]{0,62}$'
export const NODE_ID = new RegExp(NODE_ID_SOURCE)
/** The JSON Schema of a node id (image.json `name`, member tables on the wire). */
export const nodeIdSchema = { type: 'string', maxLength: 63, pattern: NODE_ID_SOURCE } as const

export function isNodeId (id: unknown): id is string {
  return typeof id === 'string' && NODE_ID.test(id)
}

/**
 * A certificate's name (its CN): a node id, or an operator name, which may use either
 * case. Both become file names (`operators/<name>.crt`), hence the same safe alphabet.
 */
export const CERT_NAME = new RegExp(NODE_ID_SOURCE, 'i')

/** Who may open a connection: a node of the cluster or a person at the REPL. */
export const PEER_ROLES = ['node', 'operator'] as const
export type PeerRole = typeof PEER_ROLES[number]
/** What a certificate may be: the cluster CA signs the others and dials nobody. */
export const CERT_ROLES = ['ca', ...PEER_ROLES] as const
export type CertRole = typeof CERT_ROLES[number]

/**
 * What hubs are ranked by, strongest first in the default order: memory (more first),
 * cpus (more first), uptime (started earlier first), id (code-unit order, the tie-break
 * that makes the ranking total).
 */
export const RANK_KEYS = ['memory', 'cpus', 'uptime', 'id'] as const
export type RankKey = typeof RANK_KEYS[number]

/** Code-unit order of ids; never `localeCompare`, whose answer depends on the machine. */
export function compareIds (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * A certificate serial in the one form origin stores, compares and shows it: the form
 * node's `tls` `getPeerCertificate().serialNumber` gives, so a serial read from a peer's
 * connection equals one read from a file or typed into `revokedSerials`. Upper-case hex,
 * leading zeros stripped but whole bytes kept (OpenSSL's BN_bn2hex: 0x0A11 is "0A11", not
 * "A11"); ':' and white space ignored. Not hex: E_CERT_INVALID.
 */
export function normalizeSerial (hex: string): string {
  const digits = hex.replace(/[\s:]/g, '').toUpperCase()
  if (!/^[0-9A-F]*$/.test(digits)) throw new OriginError('E_CERT_INVALID', `serial is not hex: "${hex}"`, { serial: hex })
  const stripped = digits.replace(/^0+/, '')
  if (stripped === '') return '0'
  return stripped.length % 2 === 1 ? `0${stripped}` : stripped
}

/** Whether two spellings name one serial (case, colons and leading zeros aside). */
export function sameSerial (a: string, b: string): boolean {
  return normalizeSerial(a) === normalizeSerial(b)
}

/**
 * An instance id split into what it orders by. Instances are `<service>-<n>` (singletons,
 * replicas: n from 0) or `<service>@<node>` (one per node: `every`, `hubs`); anything else
 * is kept whole.
 */
type InstanceKey = [service: string, kind: 0, digits: string] | [service: string, kind: 1, node: string] | [id: string, kind: 2, rest: '']

function instanceKey (id: string): InstanceKey {
  const at = id.indexOf('@')
  if (at >= 0) return [id.slice(0, at), 1, id.slice(at + 1)]
  const indexed = /^(.*)-(\d+)$/.exec(id)
  if (indexed !== null) return [indexed[1], 0, indexed[2]]
  return [id, 2, '']
}

/**
 * The one order of instance ids: by service (code units), then `-<n>` instances by n
 * (web-2 before web-10; digits compared by length, then code units, so no id is too long
 * to compare), then `@<node>` instances by node, then other ids. A total order: two ids
 * compare 0 only when they are the same string.
 */
export function compareInstances (a: string, b: string): number {
  if (a === b) return 0
  const x = instanceKey(a)
  const y = instanceKey(b)
  return compareIds(x[0], y[0]) || x[1] - y[1] ||
    (x[1] === 0 ? x[2].length - y[2].length : 0) || compareIds(x[2], y[2])
}

/** Whether instance `a` comes before `b` in `compareInstances` order. */
export function instanceBefore (a: string, b: string): boolean {
  return compareInstances(a, b) < 0
}

/**
 * An instance's state as everyone but its node should read it: what its node said while
 * the member is alive, `unknown` while it is suspect (it may have stopped with its node),
 * `lost` once it is dead or left (its instances start elsewhere). Only `ready` counts as
 * ready.
 */
export function instanceState (member: 'alive' | 'suspect' | 'dead' | 'left', said: string): string {
  return member === 'suspect' ? 'unknown' : member === 'dead' || member === 'left' ? 'lost' : said
}
