/**
 * The client side of a connection: open wss with our certificate, check that the other
 * end presents a `node` certificate of this cluster, wrap it in RPC. Used by nodes to
 * reach each other and by the REPL to reach a node.
 */
import type { SecureContext, TLSSocket } from 'node:tls'
import WebSocket from 'ws'
import type { Clock } from '../clock'
import { OriginError, errorMessage } from '../errors'
import type { Logger } from '../log'
import { wsChannel } from './channel'
import { peerOf } from './peer'
import { splitAddress } from '../address'
import { RpcConnection, type Router, type RpcOptions } from './rpc'

export const PATH = '/origin/v1'

export interface DialOptions extends RpcOptions {
  address: string
  context: SecureContext
  cluster: string
  revoked: ReadonlySet<string>
  router: Router
  timeoutMs: number
  log: Logger
  /** What the connection's call deadlines run on. @default systemClock */
  clock?: Clock
  /** Source address for the connection (a node dials from the address it listens on). */
  localAddress?: string
}

export async function dial (o: DialOptions): Promise<RpcConnection> {
  const { host, port } = splitAddress(o.address)
  const url = `wss://${host.includes(':') ? `[${host}]` : host}:${port}${PATH}`
  const ws = new WebSocket(url, {
    secureContext: o.context,
    // Peers are identified by the role and cluster in their certificate, not by hostname.
    checkServerIdentity: () => undefined,
    rejectUnauthorized: true,
    maxPayload: o.maxFrameBytes,
    perMessageDeflate: false,
    // ws's own timer, on real time: it bounds a real socket's TLS and HTTP upgrade.
    handshakeTimeout: o.timeoutMs,
    ...(o.localAddress === undefined ? {} : { localAddress: o.localAddress })
  } as unknown as WebSocket.ClientOptions)
  return await new Promise<RpcConnection>((resolve, reject) => {
    let socket: TLSSocket | undefined
    ws.once('upgrade', (res) => { socket = res.socket as TLSSocket })
    ws.once('unexpected-response', (req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('close', () => req.destroy())
      res.on('end', () => reject(new OriginError('E_UNREACHABLE', `${o.address} refused us: ${body.trim() || `HTTP ${res.statusCode ?? '?'}`}`, { address: o.address })))
      res.on('error', () => reject(new OriginError('E_UNREACHABLE', `${o.address} refused us (HTTP ${res.statusCode ?? '?'})`)))
    })
    ws.once('error', (err) => reject(new OriginError('E_UNREACHABLE', `cannot connect to ${o.address}: ${describeSocketError(err)}`, { address: o.address })))
    ws.once('open', () => {
      try {
        if (socket === undefined) throw new OriginError('E_CERT_INVALID', 'no TLS socket after the upgrade')
        const peer = peerOf(socket, o.cluster, o.revoked)
        if (peer.role !== 'node') throw new OriginError('E_FORBIDDEN_ROLE', `it presented a ${peer.role} certificate, not a node certificate`)
        resolve(new RpcConnection(wsChannel(ws, { ...peer, remote: o.address }, socket), o.router, o, o.log, o.clock))
      } catch (err) {
        ws.terminate()
        reject(new OriginError('E_UNREACHABLE', `refused ${o.address}: ${errorMessage(err)}`, { address: o.address }))
      }
    })
  })
}

/** Socket and TLS errors in words an operator can act on. */
export function describeSocketError (err: Error & { code?: string }): string {
  switch (err.code) {
    case 'ECONNREFUSED': return 'connection refused (nothing listening)'
    case 'ECONNRESET': return 'connection reset by peer'
    case 'CERT_HAS_EXPIRED': return 'certificate has expired'
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
      return `certificate not signed by this cluster's CA (${err.message})`
    default: return err.message
  }
}
