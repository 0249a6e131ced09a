/**
 * Kept-alive upstream connections for published ports in HTTP mode: one http.Agent per
 * target (instance and port), whose sockets come from the proxy's own connect (a loopback
 * TCP connection on this node, a mutual-TLS stream through another node). A request to an
 * instance on another node then costs a request on an open stream, not a TLS handshake
 * (about 3 ms on this hardware) per request.
 *
 * An agent's idle sockets close after `idleMs`, below the 5 s keep-alive most servers
 * (Node's http among them) give an idle client, so a request rarely lands on a socket the
 * instance is closing; one that does is retried once when it is safe to (no body sent).
 */
import http from 'node:http'
import type { Socket } from 'node:net'

export interface UpstreamsOptions {
  /** Idle sockets per target kept open. More saves handshakes under bursts; each holds a connection on the instance. @default 16 */
  maxIdle?: number
  /** An idle socket closes after this long. Keep it below the instances' own keep-alive timeout. @default 4000 */
  idleMs?: number
}

export class Upstreams {
  private readonly agents = new Map<string, { instance: string, node: string, agent: http.Agent }>()

  constructor (private readonly o: UpstreamsOptions = {}) {}

  /**
   * The agent for `instance` on `node` at `port` (its first when undefined); `connect` opens
   * a new socket to it. By node too: an instance that moved is another target.
   */
  agentFor (target: { instance: string, node: string }, port: string | undefined, connect: () => Promise<Socket>): http.Agent {
    const instance = target.instance
    const key = `${target.node}\0${instance}\0${port ?? ''}`
    const known = this.agents.get(key)
    if (known !== undefined) return known.agent
    const agent = new http.Agent({ keepAlive: true, maxFreeSockets: this.o.maxIdle ?? 16, timeout: this.o.idleMs ?? 4000 })
    // Node's Agent takes a socket from createConnection's callback when it returns nothing.
    ;(agent as unknown as { createConnection: (o: unknown, cb: (err: Error | null, s?: Socket) => void) => undefined }).createConnection = (_o, cb) => {
      connect().then((s) => cb(null, s), (err: Error) => cb(err))
      return undefined
    }
    this.agents.set(key, { instance, node: target.node, agent })
    return agent
  }

  /** Close the kept sockets of every target not ready any more (on the node the agent reaches). */
  keepOnly (ready: (instance: string, node: string) => boolean): void {
    for (const [key, a] of this.agents) {
      if (ready(a.instance, a.node)) continue
      a.agent.destroy()
      this.agents.delete(key)
    }
  }

  closeAll (): void { this.keepOnly(() => false) }
}
