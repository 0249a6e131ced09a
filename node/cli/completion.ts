/**
 * `origin completion bash|zsh`: a shell completion script. The script asks
 * `origin __complete WORDS...` for candidates, which reads them from the commands
 * themselves (their names, subcommands and flags, from each command's usage text) and
 * from the saved contexts, so it stays right as commands change. An empty answer leaves
 * the shell to complete file names.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { OriginError } from '../errors'
import type { Command } from './args'
import { readContexts } from './context'

export type Registry = Record<string, { summary: string, load: () => Command }>

const bash = `# origin completion for bash. Load it with:  source <(origin completion bash)
_origin_complete() {
  local IFS=$'\\n'
  COMPREPLY=($(origin __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -o bashdefault -F _origin_complete origin
`

const zsh = `#compdef origin
# origin completion for zsh. Load it with:  source <(origin completion zsh)
_origin_complete() {
  local -a candidates
  candidates=("\${(@f)$(origin __complete "\${words[@]:1:$((CURRENT-1))}" 2>/dev/null)}")
  if [[ -n "\${candidates[1]}" ]]; then compadd -a candidates; else _files; fi
}
compdef _origin_complete origin
`

const usage = `usage: origin completion bash|zsh

Prints a completion script for the shell: commands, subcommands, flags and saved context
names (file names elsewhere). Load it in the shell's startup file:
  bash:  source <(origin completion bash)     (in ~/.bashrc)
  zsh:   source <(origin completion zsh)      (in ~/.zshrc, after compinit)`

export function completionCommand (): Command {
  return {
    usage,
    async run (argv) {
      if (argv.length !== 1 || (argv[0] !== 'bash' && argv[0] !== 'zsh')) throw new OriginError('E_ARGS', argv.length === 0 ? 'missing the shell (bash or zsh)' : `unknown shell "${argv.join(' ')}" (bash or zsh)`, { usage })
      process.stdout.write(argv[0] === 'bash' ? bash : zsh)
      return 0
    }
  }
}

/** Candidates for the last of `words` (the word being completed), one a line. */
export async function complete (registry: Registry, words: string[]): Promise<string[]> {
  const cur = words[words.length - 1] ?? ''
  const before = words.slice(0, -1)
  const starting = (list: string[]): string[] => list.filter((c) => c.startsWith(cur))
  if (before.length === 0) return starting([...Object.keys(registry), '--help', '--version'])
  const entry = registry[before[0]!]
  if (entry === undefined) return []
  const text = entry.load().usage
  const { flags, takesValue, subs } = readUsage(before[0]!, text)
  const prev = before[before.length - 1]!
  if (prev.startsWith('--') && takesValue.has(prev.slice(2))) return starting(await valuesOf(prev.slice(2), before))
  if (cur.startsWith('-')) return starting([...flags.map((f) => `--${f}`), '--help'])
  if (before.length === 1 && subs.length > 0) return starting(subs)
  return []
}

/** Flags (and which take a value) and subcommands, as the usage text shows them. */
function readUsage (command: string, usage: string): { flags: string[], takesValue: Set<string>, subs: string[] } {
  const flags = new Set<string>()
  const takesValue = new Set<string>()
  for (const m of usage.matchAll(/--([a-z][a-z-]*)(?:[ =]([A-Z][A-Z0-9:_,.[\]|]*))?/g)) {
    flags.add(m[1]!)
    if (m[2] !== undefined) takesValue.add(m[1]!)
  }
  const subs = new Set<string>()
  for (const m of usage.matchAll(new RegExp(`origin ${command} ([a-z][a-z|-]*)`, 'g'))) for (const s of m[1]!.split('|')) subs.add(s)
  return { flags: [...flags].filter((f) => f !== 'help'), takesValue, subs: [...subs] }
}

async function valuesOf (flag: string, before: string[]): Promise<string[]> {
  if (flag === 'context') return Object.keys(await readContexts().catch(() => ({})))
  if (flag === 'as') {
    const i = before.lastIndexOf('--keys')
    const keys = i >= 0 ? before[i + 1] : process.env.ORIGIN_KEYS
    if (keys === undefined) return []
    return (await readdir(join(keys, 'operators')).catch(() => [])).filter((f) => f.endsWith('.crt')).map((f) => f.slice(0, -4))
  }
  if (flag === 'connect') return [...new Set(Object.values(await readContexts().catch(() => ({}))).map((c) => c.connect))]
  return []
}
