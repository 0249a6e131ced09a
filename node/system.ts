/**
 * The system builder: one place that wires a node. Components start in the order given
 * (dependencies first) and stop in reverse; start and stop are idempotent; a failed start
 * stops what had already started and reports which component failed.
 */
import { OriginError, errorMessage } from './errors'
import type { Logger } from './log'

export interface Component {
  start (): Promise<void>
  stop (): Promise<void>
}

export interface NamedComponent { name: string, component: Component }

export class System {
  private started: NamedComponent[] = []
  private running = false

  constructor (private readonly components: NamedComponent[], private readonly log: Logger) {}

  async start (): Promise<void> {
    if (this.running) return
    for (const entry of this.components) {
      try {
        await entry.component.start()
        this.started.push(entry)
      } catch (err) {
        this.log.error(`${entry.name} failed to start: ${errorMessage(err)}; stopping what started`)
        await this.stop()
        throw new OriginError('E_START_FAILED', `${entry.name} failed to start: ${errorMessage(err)}`, { component: entry.name })
      }
    }
    this.running = true
  }

  async stop (): Promise<void> {
    const toStop = this.started.reverse()
    this.started = []
    this.running = false
    for (const entry of toStop) {
      try {
        await entry.component.stop()
      } catch (err) {
        this.log.error(`${entry.name} failed to stop cleanly: ${errorMessage(err)}`)
      }
    }
  }
}
