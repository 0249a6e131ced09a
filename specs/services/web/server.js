// web: a tiny HTTP service. Listens on $PORT (8080 if unset); /health answers "ok".
'use strict'
const http = require('node:http')
const os = require('node:os')

const port = Number(process.env.PORT || 8080)
const node = process.env.ORIGIN_NODE_ID || os.hostname()
let served = 0

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' })
  if (req.url === '/health') return res.end('ok\n')
  served++
  res.end(`hello from web on ${node} (pid ${process.pid}, request ${served})\n`)
})
server.on('error', (err) => { console.error(`web: ${err.message}`); process.exit(1) })
server.listen(port, () => console.log(`web: listening on port ${port} on ${node}`))
process.on('SIGTERM', () => { console.log('web: stopping'); server.close(() => process.exit(0)) })
