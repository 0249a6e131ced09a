/**
 * Reaching a target instance: a TCP connection when it runs on this node, else a
 * mutual-TLS stream to its node (transport/stream.ts), which connects it there. The stream
 * port of each node is asked once over the mesh and kept until a stream to it fails.
 */
import type { Socket } from 'node:net'
import { OriginError } from '../errors'
import { hostOf } from '../address'
import { call } from '../protocol/table'
import { mesh } from '../protocol/mesh'
import type { StreamClient } from '../transport/stream'
import type { Target } from './choose'
import { connectTcp } from './sockets'
import type { ProxyComponents } from './types'

export class Dialer {
  private readonly streamPorts = new Map<string, Promise<number>>()

  constructor (private readonly c: Pick<ProxyComponents, 'membership' | 'transport' | 'local'>, private readonly streams: StreamClient) {}

  async connectTo (target: Target, portName: string | undefined): Promise<Socket> {
    return target.node === this.c.membership.id ? await this.connectLocal(target.instance, portName) : await this.connectRemote(target, portName)
  }

  /** A TCP connection to a ready instance on this node, at its named port. */
  async connectLocal (instance: string, portName: string | undefined): Promise<Socket> {
    const r = this.c.local().find((x) => x.instance === instance)
    if (r === undefined || r.status.state !== 'ready') throw new OriginError('E_NOT_FOUND', `${instance} is not ready on this node`)
    const port = portName === undefined ? r.port : Object.hasOwn(r.ports, portName) ? r.ports[portName] : undefined
    if (port === undefined) throw new OriginError('E_NOT_FOUND', `${instance} has no port named ${portName ?? '?'} (it has ${Object.keys(r.ports).join(', ')})`)
    return await connectTcp(hostOf(r.address), port)
  }

  /** A stream to `target` through its node; with `http`, that node reads the requests (and counts admission). */
  async connectRemote (target: Target, portName: string | undefined, http = false): Promise<Socket> {
    const member = this.c.membership.table()[target.node]
    if (member === undefined) throw new OriginError('E_NOT_FOUND', `${target.node} is not in the member table`)
    let port = this.streamPorts.get(member.address)
    if (port === undefined) {
      port = this.c.transport.peer(member.address).then(async (conn) => await call(conn, mesh, 'proxy.streamPort'))
      this.streamPorts.set(member.address, port)
    }
    try {
      const p = await port
      if (p === 0) throw new OriginError('E_UNREACHABLE', `${target.node} does not serve streams yet`)
      return await this.streams.open(`${hostOf(member.address)}:${p}`, { instance: target.instance, port: portName ?? null, ...(http ? { http } : {}) })
    } catch (err) {
      this.streamPorts.delete(member.address) // the node may have restarted on another stream port
      throw err
    }
  }
}
