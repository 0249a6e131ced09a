// registry: runs on each hub; logs a line every 15 s so its placement is easy to see.
'use strict'
const os = require('node:os')

const node = process.env.ORIGIN_NODE_ID || os.hostname()
const started = Date.now()

console.log(`registry: serving on hub ${node}`)
const timer = setInterval(() => {
  console.log(`registry: up ${Math.round((Date.now() - started) / 1000)} s on hub ${node}`)
}, 15_000)
process.on('SIGTERM', () => { clearInterval(timer); console.log(`registry: leaving hub ${node}`) })
