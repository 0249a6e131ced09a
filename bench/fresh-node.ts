/**
 * Benchmarks run under a copy of the node executable written for the run.
 *
 * RSS counts the executable's pages as the kernel maps them, and on Linux with large folios
 * (ext4 since 6.x) that depends on the page cache's history of the file, not on the process:
 * the same idle `node -e` measured 40 MiB from a freshly copied binary and 56 MiB from the
 * system's binary after the cache had been dropped and read back. A fresh copy is the state a
 * machine has after installing a file with cp, scp, tar or docker; running from one, every run
 * (and every floor beside it) is measured from the same state.
 */
import { spawn } from 'node:child_process'
import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'

const VARIABLE = 'ORIGIN_BENCH_NODE'

/**
 * Runs this benchmark again under a fresh copy of node and resolves true once it has ended
 * (its exit code becomes this process's); resolves false when this already is that copy.
 */
export async function rerunUnderFreshNode (): Promise<boolean> {
  if (process.env[VARIABLE] === process.execPath) return false
  const dir = await mkdtemp(join(os.tmpdir(), 'origin-bench-node-'))
  try {
    const copy = join(dir, 'node')
    await copyFile(process.execPath, copy)
    const child = spawn(copy, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, [VARIABLE]: copy } })
    const forward = (signal: NodeJS.Signals): void => { child.kill(signal) }
    process.on('SIGINT', forward).on('SIGTERM', forward)
    process.exitCode = await new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128))))
    process.off('SIGINT', forward).off('SIGTERM', forward)
    return true
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Says which executable the figures are from. */
export const EXECUTABLE_NOTE = `processes run from a copy of node written for this run (${VARIABLE}; see bench/fresh-node.ts for why)`
