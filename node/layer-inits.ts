/**
 * What each layer is given from the resolved node config: the one place image.json's
 * settings are handed out, so a layer reads no config of its own.
 */
import type { NodeConfig } from './config'
import type { SpecSource } from './desired'
import type { LayerName } from './plugins'
import type { Containment } from './supervisor/contain'

/**
 * What each layer is given from image.json (a plugin gets the same, its own config laid
 * over it). Every discovery method image.json names runs at once, and image.json's `seeds`
 * are the seeds method's too.
 */
export function layerInits (config: NodeConfig, dataDir: string, containment: Containment) {
  const { seeds: moreSeeds, ...methods } = config.discovery
  return {
    transport: { listen: config.listen },
    discovery: { seeds: [...config.seeds, ...(moreSeeds ?? [])], ...methods },
    lease: { key: `/origin/${config.cluster}/downing` },
    membership: config.membership,
    hubs: { policy: config.hubs },
    desired: { source: specSource(config), dataDir, tsTimeoutMs: config.spec?.tsTimeoutMs, limits: config.spec?.limits },
    state: { dataDir },
    supervisor: {
      dataDir,
      logMaxBytes: config.log.maxBytes,
      logKeep: config.log.keep,
      fenceAfterMs: config.membership.suspectAfterMs,
      secretsDir: config.secrets,
      containment,
      dockerSocket: config.docker?.socket
    },
    journal: { dataDir, maxBytes: config.log.maxBytes, keep: config.log.keep },
    health: config.health
  } satisfies Partial<Record<LayerName, unknown>>
}

export function portOf (listen: string): number {
  return Number(listen.slice(listen.lastIndexOf(':') + 1))
}

function specSource (config: NodeConfig): SpecSource {
  if (config.specDir !== undefined) return { kind: 'dir', dir: config.specDir }
  if (config.spec === undefined) return { kind: 'none' }
  const { url, ref, token, webhookSecret, allowedSigners } = config.spec
  return { kind: 'git', url, ref, token, webhookSecret, allowedSigners, pollIntervalMs: config.spec.pollIntervalMs }
}
