/**
 * The REPL's history across sessions: one line per entry in a file in the user's config
 * dir (`$XDG_CONFIG_HOME/origin/repl_history`, else `~/.config/origin/repl_history`),
 * mode 0600 since what is typed may hold secrets. The newest `max` lines are kept.
 */
import { appendFile, chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { dirname, join } from 'node:path'

/** The user's config dir for origin (contexts live there too). */
export function configDir (env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(os.homedir(), '.config')
  return join(base, 'origin')
}

export function historyPath (env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'repl_history')
}

export class History {
  private last: string | undefined
  private writing: Promise<void> = Promise.resolve()

  private constructor (readonly path: string, readonly lines: string[]) {
    this.last = lines[lines.length - 1]
  }

  /** Reads the file (oldest first in `lines`), trimming it to the newest `max` lines. */
  static async open (path: string, max = 1000): Promise<History> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return ''; throw err })
    const all = text.split('\n').filter((l) => l.trim() !== '')
    const lines = all.slice(-max)
    if (all.length > max * 2 || text === '') await writeFile(path, lines.map((l) => l + '\n').join(''), { mode: 0o600 })
    await chmod(path, 0o600).catch(() => {})
    return new History(path, lines)
  }

  /** Appends a line typed (not blank, not the same as the one before). */
  add (line: string): void {
    const l = line.replace(/\n/g, ' ').trimEnd()
    if (l.trim() === '' || l === this.last) return
    this.last = l
    this.lines.push(l)
    this.writing = this.writing.then(async () => { await appendFile(this.path, l + '\n', { mode: 0o600 }) }).catch(() => {})
  }

  /** Resolves once every line added is on disk. */
  async flush (): Promise<void> { await this.writing }
}
