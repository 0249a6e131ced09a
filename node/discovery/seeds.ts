/** The `seeds` method: a fixed list of `host:port`, as image.json's `seeds` always was. */
import { EventEmitter } from 'node:events'
import type { DiscoveryComponents, Discovery } from './types'

export interface SeedsDiscoveryInit {
  /** Addresses to try. @default [] */
  seeds?: string[]
}

export function seedsDiscovery (init: SeedsDiscoveryInit) {
  return (_components?: DiscoveryComponents): Discovery => {
    const list = [...new Set(init.seeds ?? [])]
    return {
      name: 'seeds',
      events: new EventEmitter(),
      peers: () => list,
      start: async () => {},
      stop: async () => {}
    }
  }
}
