/**
 * The instance's side: what reaches this node's own instances. Streams other nodes open
 * to one of them (bytes, joined to a TCP connection to it; or, with header `http`, HTTP
 * requests this node reads), and every HTTP request for one of them, from a stream or from
 * a published port here, admitted by the instance's limits (admission.ts) before it goes
 * on, on a kept-alive connection (upstreams.ts).
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { errorMessage } from '../errors'
import { serviceOfInstance } from '../scheduler'
import { join } from './forward'
import { httpPublisher, type Opened } from './http'
import { keyOf } from './keyed'
import type { ProxyParts } from './parts'

export class Incoming {
  /** Streams from other nodes carrying HTTP requests (header `http`), by the instance and port they are for. */
  private readonly httpStreams = new WeakMap<Socket, { instance: string, port?: string }>()
  /** The second hop: requests other nodes' published ports send to this node's instances. */
  private readonly instanceHttp = httpPublisher({
    forwarded: false,
    service: (req) => serviceOfInstance(this.httpStreams.get(req.socket)?.instance ?? ''),
    warn: (line) => this.p.c.log.warn(`http from another node: ${line}`),
    open: async (req) => {
      const to = this.httpStreams.get(req.socket)
      if (to === undefined) return { refuse: { status: 502, body: 'a request on a stream with no instance' } }
      return this.openLocalHttp(to.instance, to.port, req)
    }
  })

  constructor (private readonly p: ProxyParts) {}

  /** Another node forwards a connection to one of our instances. */
  async serveStream (header: Record<string, unknown>, socket: Socket, from: string): Promise<void> {
    socket.on('error', () => {})
    const instance = typeof header.instance === 'string' ? header.instance : ''
    const portName = typeof header.port === 'string' ? header.port : undefined
    if (header.http === true) {
      this.httpStreams.set(socket, { instance, port: portName })
      this.p.conns.add(instance, socket)
      this.instanceHttp.emit('connection', socket)
      socket.resume()
      return
    }
    try {
      const upstream = await this.p.dial.connectLocal(instance, portName)
      this.p.conns.add(instance, socket)
      join(socket, upstream)
      socket.resume()
    } catch (err) {
      this.p.c.log.warn(`stream from ${from} to ${instance}: ${errorMessage(err)}`)
      socket.destroy()
    }
  }

  /** A request for `instance` on this node: admitted by its limits, then on a kept-alive connection to it. */
  openLocalHttp (instance: string, port: string | undefined, req: IncomingMessage): Opened {
    const { c, clock, conns, dial } = this.p
    const service = serviceOfInstance(instance)
    const svc = c.spec.current()?.spec.services[service]
    const key = svc?.route === undefined ? undefined : keyOf(svc.route, req.headers, req.url ?? '/')
    const admitted = this.p.admission.admit(service, instance, svc?.admission, key, clock.now())
    if ('refuse' in admitted) return admitted
    const connect = async (): Promise<Socket> => {
      const socket = await dial.connectLocal(instance, port)
      conns.add(instance, socket)
      return socket
    }
    return { instance, agent: this.p.upstreams.agentFor({ instance, node: c.membership.id }, port, connect), connect, release: admitted.release }
  }
}
