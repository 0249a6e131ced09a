// agent: runs on every node and logs a heartbeat line. A TS spec: the editor checks it
// against the ServiceSpec type through defineService.
import { defineService } from 'origin/spec'

const everySeconds = 5

export default defineService({
  run: {
    command: 'node',
    args: ['services/agent/agent.js'],
    env: { HEARTBEAT_MS: String(everySeconds * 1000) }
  },
  placement: { kind: 'every' },
  restart: { policy: 'always', backoffMs: 1000 }
})
