#!/usr/bin/env node
/**
 * `origin`: the one command. `origin <keys|node|repl|build|demo> --help` for each.
 * Argument errors print what is wrong and exit 2; other failures exit 1.
 */
import { OriginError, errorMessage } from '../errors'
import type { Command } from './args'

// Loaded on use: a node should not pay for TypeScript and ts-node, which only the REPL needs.
const commands: Record<string, { summary: string, load: () => Command }> = {
  keys: { summary: 'create a cluster CA and node certificate, or issue an operator certificate', load: () => (require('./keys') as typeof import('./keys')).keysCommand },
  node: { summary: 'run a node (originates the cluster or joins it)', load: () => (require('./node') as typeof import('./node')).nodeCommand },
  repl: { summary: 'TypeScript REPL against the live cluster (-e for one expression)', load: () => (require('./repl') as typeof import('./repl')).replCommand },
  build: { summary: 'build a node image: one executable with the keys inside, plus Dockerfile, k8s and systemd', load: () => (require('./build') as typeof import('./build')).buildCommand },
  demo: { summary: 'boot a local 3-node cluster and open the REPL on it', load: () => (require('./demo') as typeof import('./demo')).demoCommand },
  spec: { summary: 'check a spec repo as nodes would (spec check DIR: exit 0 valid, 1 not)', load: () => (require('./spec') as typeof import('./spec')).specCommand },
  context: { summary: 'save --keys --as --connect under a name, for --context NAME', load: () => (require('./context') as typeof import('./context')).contextCommand },
  completion: { summary: 'print a bash or zsh completion script', load: () => (require('./completion') as typeof import('./completion')).completionCommand() }
}

function overview (): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  return `usage: origin <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n'origin <command> --help' for a command's options.`
}

async function main (argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview())
    return name === undefined ? 2 : 0
  }
  if (name === '--version') { console.log(`origin ${(require('./version') as typeof import('./version')).version()}`); return 0 }
  // What the completion scripts (completion.ts) ask: candidates for the last word, one a line.
  if (name === '__complete') { for (const c of await (require('./completion') as typeof import('./completion')).complete(commands, rest)) console.log(c); return 0 }
  const entry = commands[name]
  if (entry === undefined) {
    console.error(`origin: unknown command "${name}"\n\n${overview()}`)
    return 2
  }
  const command = entry.load()
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage)
    return 0
  }
  try {
    return await command.run(rest)
  } catch (err) {
    if (err instanceof OriginError && err.code === 'E_ARGS') {
      console.error(`origin ${name}: ${err.message}\n'origin ${name} --help' for usage`)
      return 2
    }
    console.error(`origin ${name}: ${errorMessage(err)}`)
    // A node whose start failed may still hold a handle (a layer's timer or socket that a
    // failed stop left): a failed command ends anyway, once its message is out.
    setTimeout(() => process.exit(1), 200).unref()
    return 1
  }
}

main(process.argv.slice(2)).then((code) => {
  // A command that serves (node, demo) resolves only when it is done serving.
  process.exitCode = code
}, (err) => {
  console.error(`origin: ${errorMessage(err)}`)
  process.exitCode = 1
})
