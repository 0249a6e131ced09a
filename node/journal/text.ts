/** One readable line per journal entry: what a person reads in `cluster.events()` and the state text. */
import type { JournalBody } from './types'

export function describeEvent (b: JournalBody): string {
  switch (b.kind) {
    case 'node': return b.what === 'started' ? 'node started' : 'node stopped'
    case 'member': return b.from === undefined ? `member ${b.member} joined (${b.facts.address}, ${b.status})` : `member ${b.member} is ${b.status} (was ${b.from})`
    case 'health': return b.unhealthy !== undefined ? `${b.member} unhealthy: ${b.unhealthy}` : `${b.member} healthy again${b.was === undefined ? '' : ` (was: ${b.was})`}`
    case 'hubs': return `hubs now ${b.hubs.join(', ') || '(none)'}${b.promoted.length > 0 ? `; promoted ${b.promoted.join(', ')}` : ''}${b.demoted.length > 0 ? `; demoted ${b.demoted.join(', ')}` : ''}`
    case 'spec-applied': return `spec applied: ${b.summary} (${b.services.length} services)`
    case 'spec-fetched': return `spec ${b.version.slice(0, 12)} fetched from ${b.from}`
    case 'build': return `build of ${b.service} ${b.what}: ${b.detail}`
    case 'spec-rejected': return `spec rejected: ${b.summary}: ${b.errors.join('; ')}`
    case 'phase': return `phase ${b.reason}`
    case 'instance': return `${b.instance} ${b.state}${b.reason === undefined ? '' : `: ${b.reason.startsWith(b.state + ':') ? b.reason.slice(b.state.length + 1).trim() : b.reason}`}${b.state === 'ready' && b.address !== undefined ? ` at ${b.address}` : ''} (version ${b.version}${b.restarts > 0 ? `, ${b.restarts} restarts` : ''})`
    case 'rollout': return `${b.instance} waits: ${b.reason}`
    case 'downing': return b.what === 'downed' ? `downing ${b.members.join(', ')} (${b.reason})` : `holding: ${b.reason}`
    case 'operator': return `operator ${b.operator}: ${b.action}${b.detail === undefined ? '' : ` ${b.detail}`}`
  }
}
