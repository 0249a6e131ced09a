/**
 * hubs: turns the member table into the hub set with the hub policy, every time the
 * table changes, and tells membership whether this node holds the role (which the
 * policy's hysteresis reads back from the table). Every node computes the same set from
 * the same table; nothing is elected.
 *
 * @example
 *   const h = hubs({ policy: { count: 3 } })({ membership, log })
 *   h.events.on('change', ({ hubs, promoted, demoted }) => ...)
 *   h.isHub()
 */
import { EventEmitter } from 'node:events'
import type { MemberTable } from '../membership'
import { hubsChanged, selectHubs } from './rank'
import { defaultHubPolicy, type HubPolicy, type Hubs, type HubsComponents, type HubsEvents, type HubsInit } from './types'

export type { HubChange, HubPolicy, Hubs, HubsComponents, HubsEvents, HubsInit, RankKey } from './types'
export { defaultHubPolicy } from './types'
export { selectHubs, rankMembers } from './rank'

export function hubs (init: HubsInit = {}) {
  return (c: HubsComponents): Hubs => new PolicyHubs(init, c)
}

class PolicyHubs implements Hubs {
  readonly events = new EventEmitter<HubsEvents>()
  private hubSet: string[] = []
  private pol: HubPolicy
  private readonly onChange = (table: MemberTable): void => this.recompute(table)

  constructor (init: HubsInit, private readonly c: HubsComponents) {
    this.pol = { ...defaultHubPolicy, ...init.policy }
  }

  current (): string[] { return this.hubSet }
  isHub (): boolean { return this.hubSet.includes(this.c.membership.id) }
  policy (): HubPolicy { return this.pol }

  setPolicy (policy: Partial<HubPolicy>): void {
    this.pol = { ...defaultHubPolicy, ...policy }
    this.recompute(this.c.membership.table())
  }

  async start (): Promise<void> {
    this.c.membership.events.on('change', this.onChange)
    this.recompute(this.c.membership.table())
  }

  async stop (): Promise<void> {
    this.c.membership.events.off('change', this.onChange)
  }

  private recompute (table: MemberTable): void {
    const next = selectHubs(table, this.pol)
    const { promoted, demoted } = hubsChanged(this.hubSet, next)
    if (promoted.length === 0 && demoted.length === 0) return
    this.hubSet = next
    const self = this.c.membership.id
    const parts = [
      promoted.length > 0 ? `promoted ${promoted.join(', ')}` : '',
      demoted.length > 0 ? `demoted ${demoted.join(', ')}` : ''
    ].filter(Boolean).join('; ')
    this.c.log.info(`${parts} (hubs: ${next.join(', ')})${promoted.includes(self) ? ' - this node is now a hub' : demoted.includes(self) ? ' - this node is no longer a hub' : ''}`)
    this.c.membership.setHubClaim(next.includes(self))
    this.events.emit('change', { hubs: next, promoted, demoted })
  }
}
