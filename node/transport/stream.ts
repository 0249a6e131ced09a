/**
 * Raw byte streams between nodes over mutual TLS 1.3, for what RPC frames do not suit (the
 * proxy's forwarded TCP connections). One TLS connection per stream, with the node's own
 * identity on both ends: the server requires a `node` certificate of this cluster and the
 * client checks the server's the same way, so apps' bytes never cross in clear.
 *
 * A stream opens with one header line (JSON, at most 4 KiB) from the client; after it the
 * bytes are the app's, both ways.
 *
 * @example
 *   const srv = await streamServer({ identity, host: '10.0.0.5', log, onStream: (head, sock, peer) => sock.pipe(sock) })
 *   const sock = await openStream(`10.0.0.5:${srv.port}`, identity, { instance: 'redis' })
 */
import type { AddressInfo } from 'node:net'
import tls, { type TLSSocket } from 'node:tls'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import { splitAddress } from './dial'
import { peerOf } from './peer'
import type { Peer } from './types'

export interface StreamIdentity { ca: string, cert: string, key: string, cluster: string }

export interface StreamServer {
  readonly port: number
  close (): Promise<void>
}

const MAX_HEADER = 4096

export async function streamServer (o: {
  identity: StreamIdentity
  host: string
  log: Logger
  revoked?: () => ReadonlySet<string>
  handshakeTimeoutMs?: number
  onStream: (header: Record<string, unknown>, socket: TLSSocket, peer: Peer) => void
}): Promise<StreamServer> {
  const server = tls.createServer({
    key: o.identity.key, cert: o.identity.cert, ca: o.identity.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3'
  }, (socket) => {
    let peer: Peer
    try {
      peer = peerOf(socket, o.identity.cluster, o.revoked?.() ?? new Set())
      if (peer.role !== 'node') throw new OriginError('E_FORBIDDEN_ROLE', `a ${peer.role} certificate may not open streams`)
    } catch (err) {
      o.log.warn(`stream from ${socket.remoteAddress ?? '?'} refused: ${errorMessage(err)}`)
      socket.destroy()
      return
    }
    const timer = setTimeout(() => socket.destroy(), o.handshakeTimeoutMs ?? 5000)
    readHeader(socket).then((header) => {
      clearTimeout(timer)
      o.onStream(header, socket, peer)
    }, (err) => {
      clearTimeout(timer)
      o.log.warn(`stream from ${peer.name} refused: ${errorMessage(err)}`)
      socket.destroy()
    })
  })
  server.on('tlsClientError', (err) => o.log.debug(`stream TLS error: ${err.message}`))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, o.host, () => { server.off('error', reject); resolve() })
  })
  const sockets = new Set<TLSSocket>()
  server.on('secureConnection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** Open a stream to a node's stream server and send `header`; resolves once TLS is up and the header sent. */
export async function openStream (address: string, identity: StreamIdentity, header: Record<string, unknown>, opts: { timeoutMs?: number, localAddress?: string } = {}): Promise<TLSSocket> {
  const { host, port } = splitAddress(address)
  return await new Promise<TLSSocket>((resolve, reject) => {
    const socket = tls.connect({
      host, port, key: identity.key, cert: identity.cert, ca: identity.ca, minVersion: 'TLSv1.3',
      // Nodes are identified by the role and cluster in their certificate, not by hostname.
      checkServerIdentity: () => undefined,
      ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress })
    })
    const timer = setTimeout(() => { socket.destroy(); reject(new OriginError('E_TIMEOUT', `stream to ${address}: no TLS within ${opts.timeoutMs ?? 3000} ms`)) }, opts.timeoutMs ?? 3000)
    socket.once('error', (err) => { clearTimeout(timer); reject(new OriginError('E_UNREACHABLE', `stream to ${address}: ${err.message}`, { address })) })
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      try {
        const peer = peerOf(socket, identity.cluster, new Set())
        if (peer.role !== 'node') throw new OriginError('E_FORBIDDEN_ROLE', `it presented a ${peer.role} certificate`)
      } catch (err) { socket.destroy(); reject(err); return }
      socket.write(JSON.stringify(header) + '\n')
      resolve(socket)
    })
  })
}

async function readHeader (socket: TLSSocket): Promise<Record<string, unknown>> {
  return await new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk])
      const nl = buf.indexOf(10)
      if (nl < 0) {
        if (buf.length > MAX_HEADER) { done(); reject(new OriginError('E_PAYLOAD_INVALID', `stream header over ${MAX_HEADER} bytes`)) }
        return
      }
      done()
      const rest = buf.subarray(nl + 1)
      if (rest.length > 0) socket.unshift(rest)
      try {
        const v = JSON.parse(buf.subarray(0, nl).toString('utf8')) as unknown
        if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
        resolve(v as Record<string, unknown>)
      } catch (err) { reject(new OriginError('E_PAYLOAD_INVALID', `stream header: ${errorMessage(err)}`)) }
    }
    const onEnd = (): void => { done(); reject(new OriginError('E_CLOSED', 'closed before the stream header')) }
    const done = (): void => { socket.off('data', onData); socket.off('end', onEnd); socket.off('error', onEnd); socket.pause() }
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('error', onEnd)
  })
}
