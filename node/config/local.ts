/**
 * A profile for nodes that share one machine (tests, the demo), like memberlist's
 * DefaultLocalConfig: the production defaults with faster failure detection.
 *
 *   resolveConfig(image, 'image.json', localConfig())   // an image's settings over it
 */
import type { NodeDefaults } from './defaults'
import { defaultConfig } from './defaults'
import { layOver } from './resolve'

/**
 * What the local profile changes, as image.json would say it (test clusters write it into
 * their nodes' image.json). Fast enough for tests, slow enough not to flap on a loaded
 * 2-core machine: a probe every 100 ms, a suspect dead after 1 s (confirmed) to 2 s
 * (alone), so a killed node is dead in about 1.2 s; singletons are fenced after 1 s out of
 * touch; unanswered seeds are tried again every 300 ms, so a cluster forms as its nodes
 * come up.
 */
export const localSettings = {
  membership: { gossipIntervalMs: 100, suspectAfterMs: 1000, deadAfterMs: 2000, seedRetryMs: 300 }
}

/** The defaults for nodes on one machine. A new object each call. */
export function localConfig (): NodeDefaults {
  return layOver(defaultConfig(), localSettings)
}
