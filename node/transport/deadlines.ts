/**
 * Call timeouts with one timer per connection instead of one per call. A timer per call
 * (setTimeout, then clearTimeout when the answer comes) was a tenth of a small call's cost
 * on the caller; almost every call is answered long before its deadline, so the timer only
 * has to wake for the earliest deadline still standing.
 *
 * The owner keeps its deadlines (in its pending calls) and says when it adds one; when the
 * timer fires, `expire(now)` settles what is due and returns the next deadline left. An
 * answered call is not removed from the timer: it just is not there when the timer fires.
 * While nothing is pending the timer does not hold the process open, as a cleared per-call
 * timer would not have.
 *
 * Timers are the connection's clock's (a VirtualClock in one-process clusters), and so is
 * time, except that on the system clock deadlines are read from the monotonic clock
 * (`deadlineTime`): a wall-clock step must not time out every call, or hold one for an hour.
 */
import { systemClock, type Clock, type Timer } from '../clock'

export interface DeadlineOwner {
  /** Time out every deadline at or before `now`; return the earliest left (Infinity: none). */
  expire (now: number): number
}

/** A monotonic clock in milliseconds: deadlines do not move when the wall clock does. */
export const monotonicMs = (): number => performance.now()

/** What deadlines on `clock` are measured with: its own time, or the monotonic one for the system clock. */
export function deadlineTime (clock: Clock): () => number {
  return clock === systemClock ? monotonicMs : () => clock.now()
}

/** setTimeout's longest delay: a deadline further out is waited for in steps. */
const LONGEST_DELAY_MS = 2 ** 31 - 1

export class DeadlineTimer {
  private timer?: Timer
  /** The deadline the timer is set for (Infinity: not set). */
  private armedFor = Infinity
  private held = false
  readonly now: () => number

  constructor (private readonly owner: DeadlineOwner, private readonly clock: Clock = systemClock) {
    this.now = deadlineTime(clock)
  }

  /** A deadline was added at `at` (on `now`'s time). */
  added (at: number): void {
    if (at < this.armedFor) this.arm(at)
    else if (!this.held) { this.timer?.ref(); this.held = true }
  }

  /** Nothing is pending any more: let the process exit if nothing else holds it. */
  idle (): void {
    if (this.held) { this.timer?.unref(); this.held = false }
  }

  stop (): void {
    this.timer?.cancel()
    this.timer = undefined
    this.armedFor = Infinity
    this.held = false
  }

  private arm (at: number): void {
    this.timer?.cancel()
    this.armedFor = at
    // Timers fire on whole milliseconds of the loop's clock, possibly a fraction early:
    // `fire` then finds nothing due and sets the timer again for what is left.
    this.timer = this.clock.after(Math.min(LONGEST_DELAY_MS, Math.max(0, Math.ceil(at - this.now()))), this.fire)
    this.held = true
  }

  private readonly fire = (): void => {
    this.timer = undefined
    this.armedFor = Infinity
    this.held = false
    const next = this.owner.expire(this.now())
    if (next !== Infinity) this.arm(next)
  }
}
