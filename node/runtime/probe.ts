/**
 * Which runtimes this node offers, for its characteristics (the scheduler places container
 * services only on nodes that say `docker`): always `process`; `docker` when the engine's
 * socket answers `GET /_ping` with OK at start. A plain HTTP request, not dockerode: a node
 * without container services does not load the client for this.
 *
 * @example
 *   const runtimes = await probeRuntimes(dockerSocket(config.docker?.socket))   // ['process', 'docker']
 */
import { request } from 'node:http'
import { connectionOf } from './docker'

export type RuntimeName = 'process' | 'docker'

export async function probeRuntimes (socket: string, timeoutMs = 1000): Promise<RuntimeName[]> {
  return (await engineAnswers(socket, timeoutMs)) ? ['process', 'docker'] : ['process']
}

/** Whether a Docker engine answers its ping at `socket` within `timeoutMs`. */
export async function engineAnswers (socket: string, timeoutMs: number): Promise<boolean> {
  let target: ReturnType<typeof connectionOf>
  try {
    target = connectionOf(socket)
  } catch {
    return false
  }
  return await new Promise((resolve) => {
    const req = request({ ...('socketPath' in target ? { socketPath: target.socketPath } : { host: target.host, port: target.port }), path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'OK'))
      res.on('error', () => resolve(false))
    })
    req.on('timeout', () => { req.destroy(); resolve(false) })
    req.on('error', () => resolve(false))
    req.end()
  })
}
