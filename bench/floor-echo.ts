/**
 * The floor the RPC path is compared with: a bare websocket server over mutual TLS that
 * answers each msgpack frame with another, nothing else: no scan or schema check of the
 * frame, no method lookup or role check, no traffic counts, no corking. Its answer has the
 * shape of a node's cluster.ping answer, so the same bytes are encoded and decoded. Run as
 * its own process by floor.ts; prints its port on stdout, then serves until killed.
 */
import https from 'node:https'
import { Packr } from 'msgpackr'
import { WebSocketServer } from 'ws'

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })
const { FLOOR_CA: ca, FLOOR_CERT: cert, FLOOR_KEY: key } = process.env
const server = https.createServer({ ca, cert, key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' })
const wss = new WebSocketServer({ server })
wss.on('connection', (ws) => {
  ws.on('message', (data: Buffer) => {
    const req = packr.unpack(data) as { id: number }
    ws.send(packr.pack({ t: 'res', id: req.id, v: { node: 'n1', at: Date.now() } }))
  })
})
server.listen(0, '127.0.0.1', () => {
  const a = server.address()
  console.log(typeof a === 'object' && a !== null ? a.port : 0)
})
