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
 *   const sock = await new StreamClient(identity).open(`10.0.0.5:${srv.port}`, { instance: 'redis' })
 */
import type { AddressInfo } from 'node:net'
import tls, { type TLSSocket } from 'node:tls'
import { systemClock, type Clock } from '../clock'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import { splitAddress } from '../address'
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
  /** @default systemClock */
  clock?: Clock
  onStream: (header: Record<string, unknown>, socket: TLSSocket, peer: Peer) => void
}): Promise<StreamServer> {
  const server = tls.createServer({
    key: o.identity.key, cert: o.identity.cert, ca: o.identity.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3'
  }, (socket) => {
    socket.setNoDelay(true)
    let peer: Peer
    try {
      peer = peerOf(socket, o.identity.cluster, o.revoked?.() ?? new Set())
      if (peer.role !== 'node') throw new OriginError('E_FORBIDDEN_ROLE', `a ${peer.role} certificate may not open streams`)
    } catch (err) {
      o.log.warn(`stream from ${socket.remoteAddress ?? '?'} refused: ${errorMessage(err)}`)
      socket.destroy()
      return
    }
    const timer = (o.clock ?? systemClock).after(o.handshakeTimeoutMs ?? 5000, () => socket.destroy())
    readHeader(socket).then((header) => {
      timer.cancel()
      o.onStream(header, socket, peer)
    }, (err) => {
      timer.cancel()
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

/**
 * Opens streams to other nodes with one secure context, resuming TLS sessions per address
 * (TLS 1.3 tickets): a new stream to a node already met costs about 2 ms instead of a full
 * handshake's 5-10. The server still reads and checks the certificate kept in the session.
 */
export class StreamClient {
  private readonly context: tls.SecureContext
  private readonly sessions = new Map<string, Buffer>()

  constructor (private readonly identity: StreamIdentity, private readonly opts: { timeoutMs?: number, localAddress?: string, clock?: Clock } = {}) {
    this.context = tls.createSecureContext({ key: identity.key, cert: identity.cert, ca: identity.ca, minVersion: 'TLSv1.3' })
  }

  /** Open a stream to a node's stream server and send `header`; resolves once TLS is up and the header sent. */
  async open (address: string, header: Record<string, unknown>): Promise<TLSSocket> {
    const { host, port } = splitAddress(address)
    const timeoutMs = this.opts.timeoutMs ?? 3000
    return await new Promise<TLSSocket>((resolve, reject) => {
      const socket = tls.connect({
        host,
        port,
        secureContext: this.context,
        session: this.sessions.get(address),
        // Nodes are identified by the role and cluster in their certificate, not by hostname.
        checkServerIdentity: () => undefined,
        ...(this.opts.localAddress === undefined ? {} : { localAddress: this.opts.localAddress })
      })
      // Small writes (a header, a request) go at once: Nagle with delayed ACKs costs 40 ms.
      socket.setNoDelay(true)
      // Only a session from a connection whose server certificate was checked is kept.
      let verified = false
      let unverified: Buffer | undefined
      const keep = (session: Buffer): void => {
        if (this.sessions.size > 1000) this.sessions.clear()
        this.sessions.set(address, session)
      }
      socket.on('session', (session: Buffer) => { if (verified) keep(session); else unverified = session })
      const timer = (this.opts.clock ?? systemClock).after(timeoutMs, () => { socket.destroy(); reject(new OriginError('E_TIMEOUT', `stream to ${address}: no TLS within ${timeoutMs} ms`)) })
      socket.once('error', (err) => { timer.cancel(); this.sessions.delete(address); reject(new OriginError('E_UNREACHABLE', `stream to ${address}: ${err.message}`, { address })) })
      socket.once('secureConnect', () => {
        timer.cancel()
        try {
          // A resumed session was made with a server whose certificate we checked, and only
          // that server holds its key: the certificate is not sent again, so not read again.
          if (!socket.isSessionReused()) {
            const peer = peerOf(socket, this.identity.cluster, new Set())
            if (peer.role !== 'node') throw new OriginError('E_FORBIDDEN_ROLE', `it presented a ${peer.role} certificate`)
          } else if (!socket.authorized) throw new OriginError('E_CERT_INVALID', `resumed session with ${address} not authorized`)
        } catch (err) { this.sessions.delete(address); socket.destroy(); reject(err); return }
        verified = true
        if (unverified !== undefined) keep(unverified)
        socket.write(JSON.stringify(header) + '\n')
        resolve(socket)
      })
    })
  }
}

/** Open one stream (no session reuse); see StreamClient. */
export async function openStream (address: string, identity: StreamIdentity, header: Record<string, unknown>, opts: { timeoutMs?: number, localAddress?: string } = {}): Promise<TLSSocket> {
  return await new StreamClient(identity, opts).open(address, header)
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
