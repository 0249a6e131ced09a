/** `open(path)` in the REPL: a downloaded log (or any file) in $VISUAL / $EDITOR. */
import { spawn } from 'node:child_process'

export async function openInEditor (path: string): Promise<string> {
  const editor = [process.env.VISUAL, process.env.EDITOR].find((e) => e !== undefined && e !== '')
  if (editor === undefined) return `set $VISUAL or $EDITOR to open files; the file is ${path}`
  // Through the shell, so an editor given with flags ("code --wait") works.
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('sh', ['-c', `${editor} "$1"`, 'open', path], { stdio: 'inherit' })
    child.once('error', reject)
    child.once('exit', (c) => resolve(c))
  })
  return code === 0 ? path : `${editor} exited with ${String(code)}`
}
