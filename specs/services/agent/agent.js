// agent: logs a heartbeat line every $HEARTBEAT_MS (5000 if unset).
'use strict'
const os = require('node:os')

const everyMs = Number(process.env.HEARTBEAT_MS || 5000)
const node = process.env.ORIGIN_NODE_ID || os.hostname()
let beats = 0

console.log(`agent: started on ${node}`)
const timer = setInterval(() => {
  beats++
  console.log(`agent: heartbeat ${beats} on ${node} (load ${os.loadavg()[0].toFixed(2)}, free ${Math.round(os.freemem() / 1048576)} MB)`)
}, everyMs)
process.on('SIGTERM', () => { clearInterval(timer); console.log('agent: stopping') })
