/**
 * `open(path)` in the REPL: a downloaded log (or any file) in $VISUAL / $EDITOR. The editor
 * gets the terminal: the REPL stops reading it (and leaves raw mode) until the editor
 * exits, so keystrokes go to the editor alone, then takes it back.
 */
import { spawn } from 'node:child_process'
import { OriginError } from '../node/errors'

/** The REPL's hold on the terminal, given up while an editor runs. */
export interface Terminal {
  release (): void
  reclaim (): void
}

export async function openInEditor (path: string, terminal?: Terminal): Promise<string> {
  if (typeof path !== 'string' || path === '') throw new OriginError('E_ARGS', 'open(path) takes the path of a file, e.g. open(await cluster.logs(\'node-1\', \'node\'))')
  const editor = [process.env.VISUAL, process.env.EDITOR].find((e) => e !== undefined && e !== '')
  if (editor === undefined) return `set $VISUAL or $EDITOR to open files; the file is ${path}`
  terminal?.release()
  try {
    // Through the shell, so an editor given with flags ("code --wait") works.
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn('sh', ['-c', `${editor} "$1"`, 'open', path], { stdio: 'inherit' })
      child.once('error', reject)
      child.once('exit', (c) => resolve(c))
    })
    if (code === 127) throw new OriginError('E_NOT_FOUND', `the editor "${editor}" was not found; set $VISUAL or $EDITOR to one that is installed`, { editor })
    return code === 0 ? path : `${editor} exited with ${String(code)}`
  } finally {
    terminal?.reclaim()
  }
}
