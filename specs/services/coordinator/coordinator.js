// coordinator: the one instance in the cluster; logs that it holds the role every 10 s.
'use strict'
const os = require('node:os')

const node = process.env.ORIGIN_NODE_ID || os.hostname()
const since = new Date().toISOString()
let ticks = 0

console.log(`coordinator: taking the role on ${node}`)
const timer = setInterval(() => {
  ticks++
  console.log(`coordinator: still the one on ${node} (since ${since}, tick ${ticks})`)
}, 10_000)
process.on('SIGTERM', () => { clearInterval(timer); console.log(`coordinator: handing over from ${node}`) })
