/**
 * An instance's own log (rotating, logfile.ts): its output and that of everything it
 * starts, one stamped line each, and origin's lifecycle lines (`origin started ...`). A
 * write that fails is said once in the node log, not once per line, until one succeeds.
 * Lines are stamped with the host's time, as the output of a real process.
 */
import { errorMessage } from '../errors'
import type { Logger } from '../log'
import { RotatingLog, lineStamper, stampLine, type LineStamper } from '../logfile'

export class InstanceLog {
  private readonly file: RotatingLog
  private writeFailing = false

  constructor (private readonly path: string, rotation: { maxBytes?: number, keep?: number }, private readonly log: Logger) {
    this.file = new RotatingLog({ path, maxBytes: rotation.maxBytes, keep: rotation.keep })
  }

  /** A lifecycle line of origin's own. */
  origin (text: string): void {
    this.append(stampLine('origin', text))
  }

  /** Stampers for one run's stdout and stderr. */
  streams (): { out: LineStamper, err: LineStamper } {
    return { out: lineStamper('out', (line) => this.append(line)), err: lineStamper('err', (line) => this.append(line)) }
  }

  async close (): Promise<void> {
    await this.file.close()
  }

  private append (line: string): void {
    try {
      this.file.write(line)
      this.writeFailing = false
    } catch (err) {
      if (!this.writeFailing) this.log.error(`cannot write the instance log ${this.path}: ${errorMessage(err)}`)
      this.writeFailing = true
    }
  }
}
