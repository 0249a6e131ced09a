/** `origin --version`: the version in the project's package.json. */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

export function version (): string {
  // dist/node/cli when compiled, node/cli from source: the first package.json up is the project's.
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'origin' && pkg.version !== undefined) return pkg.version
    } catch {
      // not here
    }
  }
  return 'unknown'
}
