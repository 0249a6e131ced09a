/**
 * The self-health monitor's settings, every default in one place with the trade-off it
 * controls. image.json's `health` sets them (node/config/image.ts validates it).
 */

export interface HealthSettings {
  /**
   * Time between checks. Each check reads the event loop histogram, calls statfs once and
   * writes, fsyncs and removes one small file in the data dir: shorter notices trouble
   * sooner for more disk syncs. @default 1000
   */
  checkIntervalMs?: number
  /**
   * Checks in a row a cause must hold before the node says it is unhealthy. Fewer reacts
   * sooner to real trouble, but moves singletons for a passing GC pause or a burst of load
   * (one long stall trips one check only). @default 3
   */
  failChecks?: number
  /**
   * Checks in a row with no cause before the node says it is healthy again. More keeps a
   * node that flickers between good and bad from drawing work back too soon. @default 5
   */
  recoverChecks?: number
  /**
   * Most event loop delay (p99 over `eventLoopWindowMs`) a healthy node has. A node this
   * late answers its peers, its instances and the REPL too slowly to be trusted with a
   * singleton; lower flags merely busy nodes (a large spec evaluation, a burst of TLS
   * handshakes). Well under membership's suspectAfterMs, so a slow node says so itself
   * before the others take it for dead. @default 1000
   */
  eventLoopDelayMs?: number
  /**
   * The window the event loop delay's p99 is taken over. Longer lets a one-off stall (a
   * GC pause, one big spec evaluation) pass as the 1% it is, and catches a loop that
   * stalls again and again even when each check lands between stalls; but it reacts
   * later, and a node stays unhealthy that much longer once the load is gone. @default 5000
   */
  eventLoopWindowMs?: number
  /**
   * Least free space in the data dir (MiB) of a healthy node: room for instance logs, the
   * journal, the code of the next spec version and state directories. A higher floor
   * warns earlier on a small disk; a lower one lets a disk fill closer to the end, where a
   * write fails in the middle of something. @default 256
   */
  minFreeMb?: number
  /**
   * Longest a reconcile pass may run, builds not counted (they are journaled with their
   * own progress and log), before the supervisor counts as stuck. Lower catches a wedged
   * supervisor sooner; higher tolerates a slow git fetch of a service's code. @default 60000
   */
  reconcileStallMs?: number
  /**
   * Longest the data dir probe (write, fsync, remove a small file) may take before the
   * disk counts as hung (a dead network mount, a failing device). Lower flags a merely
   * slow disk under a burst of writes. @default 10000
   */
  probeTimeoutMs?: number
}

export const healthDefaults: Required<HealthSettings> = {
  checkIntervalMs: 1000,
  failChecks: 3,
  recoverChecks: 5,
  eventLoopDelayMs: 1000,
  eventLoopWindowMs: 5000,
  minFreeMb: 256,
  reconcileStallMs: 60_000,
  probeTimeoutMs: 10_000
}

/** The JSON Schema of image.json's `health`. */
export const healthSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    checkIntervalMs: { type: 'integer', minimum: 50, maximum: 600_000 },
    failChecks: { type: 'integer', minimum: 1, maximum: 1000 },
    recoverChecks: { type: 'integer', minimum: 1, maximum: 1000 },
    eventLoopDelayMs: { type: 'integer', minimum: 10, maximum: 3_600_000 },
    eventLoopWindowMs: { type: 'integer', minimum: 100, maximum: 3_600_000 },
    minFreeMb: { type: 'integer', minimum: 0, maximum: 1 << 30 },
    reconcileStallMs: { type: 'integer', minimum: 100, maximum: 86_400_000 },
    probeTimeoutMs: { type: 'integer', minimum: 10, maximum: 3_600_000 }
  }
}
