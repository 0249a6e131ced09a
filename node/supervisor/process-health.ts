/**
 * Health checks of one run: run on a timer while it lives, each answer turned into a state
 * by policy.ts afterCheck (pure) and handed back to be applied (process-run.ts).
 */
import type { Clock } from '../clock'
import type { HealthSpec } from '../desired/types'
import { childEnv } from '../runtime/process'
import { dropFlags, type InstanceUser } from './contain'
import { runHealthCheck } from './health'
import { afterCheck, serviceDefaults, type HealthState, type HealthVerdict } from './policy'
import { after, type InstanceState, type Run } from './process-types'

/** What the health loop needs of the lifecycle. */
export interface HealthHost {
  /** Paces the checks and times the start period; a check's own timeout is real (it waits on a socket or a process). */
  clock: Clock
  /** `run` is still the current run and has not exited. */
  live: (run: Run) => boolean
  state: () => InstanceState
  /** Applies a verdict reached in state `was` (logs, status). */
  apply: (v: HealthVerdict, was: HealthState, detail: string) => void
}

/** Checks now, then every intervalMs while the run lives; paused or stopping runs are not checked. */
export async function checkHealth (run: Run, h: HealthSpec, ctx: { cwd: string, env: Record<string, string>, user?: InstanceUser }, host: HealthHost): Promise<void> {
  if (run.exited || !host.live(run)) return
  const interval = h.intervalMs ?? serviceDefaults.healthIntervalMs
  const again = (): void => after(run, host.clock, interval, () => { void checkHealth(run, h, ctx, host) })
  if (!isHealthState(host.state())) { again(); return }
  const result = await runHealthCheck(h, h.timeoutMs ?? serviceDefaults.healthTimeoutMs, ctx.cwd, childEnv(ctx.env, ctx.user))
  if (run.exited || !host.live(run)) return
  again()
  const now = host.state()
  if (!isHealthState(now)) return // the answer predates a pause or a stop
  const v = afterCheck(now, run.failures, result, host.clock.now() - run.startedAt, { startPeriodMs: h.startPeriodMs })
  run.failures = v.failures
  host.apply(v, now, result.detail)
}

function isHealthState (s: InstanceState): s is HealthState {
  return s === 'starting' || s === 'ready' || s === 'unhealthy'
}

/** A command health check runs as the instance's user: it is the service's code, and its state dir is the service's to write. */
export function healthAs (h: HealthSpec | undefined, user: InstanceUser | undefined, setpriv: string | undefined): HealthSpec | undefined {
  if (h?.command === undefined || user === undefined) return h
  if (setpriv === undefined) throw new Error('cannot run a health check as the instance\'s user without setpriv')
  return { ...h, command: { command: setpriv, args: [...dropFlags(user), '--', h.command.command, ...(h.command.args ?? [])] } }
}
