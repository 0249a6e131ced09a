/**
 * What one commit's spec may cost a node to read. Every limit, with its default, lives here.
 * A commit past any of them is rejected with the reason, like any other bad commit; TS
 * files run in a separate process that is killed when it goes past a limit, so no spec can
 * stop or end the node that reads it.
 */
import { OriginError } from '../errors'

export interface SpecLimits {
  /**
   * CPU time for all TS files of one commit, transpiling included (the evaluator's own
   * start is not counted). CPU time, so a machine whose CPUs are busy with other work does
   * not reject a valid spec. Real time is bounded too, at 20 times this (evaluator.ts):
   * past that the machine is too busy to read specs, and the spec is tried again at the
   * next sync, not rejected.
   * Past it the evaluator is killed. Higher lets slow specs through;
   * lower bounds what a runaway spec costs a hub.
   * @default 5000
   */
  totalMs: number
  /**
   * CPU time for running one TS file with what it imports (a loop is stopped here with the
   * file named, and the next file still gets its turn). Capped by what is left of totalMs.
   * @default 1000
   */
  fileMs: number
  /**
   * Memory the evaluation of one commit may use on top of the evaluator's own, in MiB:
   * the V8 heap and array buffers together. The TypeScript transpiler counts too (about
   * 120 MiB for 1 MiB of TS).
   * @default 256
   */
  memoryMb: number
  /**
   * Bytes of spec files one commit may have read: cluster and service files and what TS
   * specs import. JSON is parsed in the node's own process, so this also bounds that work
   * (about 40 ms a MiB).
   * @default 4 MiB
   */
  maxSpecBytes: number
  /**
   * Bytes of TypeScript one commit may have transpiled (its TS specs and the TS files they
   * import): the transpiler takes about 1 s and 120 MiB for 1 MiB of TS.
   * @default 1 MiB
   */
  maxTsBytes: number
  /**
   * Bytes the evaluator may send back for one commit (the evaluated values as JSON, and
   * errors). Past it the evaluator is killed.
   * @default 4 MiB
   */
  maxOutputBytes: number
}

export const defaultSpecLimits: Readonly<SpecLimits> = Object.freeze({
  totalMs: 5000,
  fileMs: 1000,
  memoryMb: 256,
  maxSpecBytes: 4 * 1024 * 1024,
  maxTsBytes: 1024 * 1024,
  maxOutputBytes: 4 * 1024 * 1024
})

const MINIMUM: Readonly<SpecLimits> = { totalMs: 10, fileMs: 10, memoryMb: 16, maxSpecBytes: 1024, maxTsBytes: 1024, maxOutputBytes: 1024 }

/** Defaults filled in and every value checked (a positive integer, not absurdly low). */
export function specLimits (partial: Partial<SpecLimits> = {}): SpecLimits {
  const limits = { ...defaultSpecLimits }
  for (const key of Object.keys(defaultSpecLimits) as Array<keyof SpecLimits>) {
    const v = partial[key]
    if (v === undefined) continue
    if (!Number.isSafeInteger(v) || v < MINIMUM[key]) {
      throw new OriginError('E_CONFIG_INVALID', `spec limit ${key} must be an integer of at least ${MINIMUM[key]}, not ${String(v)}`, { key })
    }
    limits[key] = v
  }
  return limits
}

/** "4 MiB", "1.5 MiB", "512 KiB": sizes as they appear in rejection messages. */
export function formatBytes (n: number): string {
  if (n >= 1024 * 1024) return `${Number((n / 1024 / 1024).toFixed(1))} MiB`
  if (n >= 1024) return `${Number((n / 1024).toFixed(1))} KiB`
  return `${n} bytes`
}

/** "5 s", "1.5 s", "800 ms". */
export function formatMs (ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`
}
