/**
 * A TCP connection (a `uses` listener's, or a published port's without `http`) forwarded
 * as bytes to a ready instance: it waits, paused, up to `waitForReadyMs` on the node's
 * clock for one to be ready, then the two sockets are joined.
 */
import type { Socket } from 'node:net'
import { errorMessage } from '../errors'
import { choose, readyTargets, type Target } from './choose'
import { join } from './forward'
import { waitForReadyMs, type ProxyParts } from './parts'

export class Relay {
  constructor (private readonly p: ProxyParts) {}

  /**
   * Forward `client` to a ready instance of `service` (port `portName`, default its first).
   * `allowed` is checked while the upstream connection opens; a no closes the client.
   */
  async forward (service: string, portName: string | undefined, client: Socket, what: string, preferLocal: boolean, allowed: Promise<boolean> = Promise.resolve(true)): Promise<void> {
    const { c, conns } = this.p
    client.pause()
    let ok = true
    allowed.then((yes) => { ok = yes; if (!yes) client.destroy() }, () => {})
    const target = await this.waitForTarget(service, preferLocal)
    if (!ok) return
    if (target === undefined) {
      c.log.warn(`${what}: no ready instance of ${service} within ${waitForReadyMs(this.p.init)} ms; closing the connection`)
      client.destroy()
      return
    }
    conns.add(target.instance, client)
    try {
      const upstream = await this.p.dial.connectTo(target, portName)
      if (!(await allowed) || !ok || client.destroyed) { upstream.destroy(); return }
      join(client, upstream)
      client.resume()
    } catch (err) {
      c.log.warn(`${what}: cannot reach ${target.instance} on ${target.node}: ${errorMessage(err)}`)
      client.destroy()
    }
  }

  /** A ready target now, else the first the member table shows within waitForReadyMs, else undefined. */
  private async waitForTarget (service: string, preferLocal: boolean): Promise<Target | undefined> {
    const { membership } = this.p.c
    const pick = (): Target | undefined => choose(readyTargets(membership.table(), service), membership.id, (i) => this.p.conns.count(i), preferLocal, this.p.nextTurn())
    const now = pick()
    if (now !== undefined) return now
    return await new Promise((resolve) => {
      const onChange = (): void => { const t = pick(); if (t !== undefined) { done(); resolve(t) } }
      const timer = this.p.clock.after(waitForReadyMs(this.p.init), () => { done(); resolve(undefined) })
      const done = (): void => { timer.cancel(); membership.events.off('change', onChange) }
      membership.events.on('change', onChange)
    })
  }
}
