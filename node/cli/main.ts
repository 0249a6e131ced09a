#!/usr/bin/env node
/**
 * `origin`: the one command. `origin <keys|node|repl|demo> --help` for each.
 * Argument errors print what is wrong and exit 2; other failures exit 1.
 */
import { OriginError, errorMessage } from '../errors'
import type { Command } from './args'
import { keysCommand } from './keys'
import { nodeCommand } from './node'
import { replCommand } from './repl'
import { demoCommand } from './demo'

const commands: Record<string, Command> = {
  keys: keysCommand,
  node: nodeCommand,
  repl: replCommand,
  demo: demoCommand
}

function overview (): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(6)} ${c.summary}`)
  return `usage: origin <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n'origin <command> --help' for a command's options.`
}

async function main (argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview())
    return name === undefined ? 2 : 0
  }
  const command = commands[name]
  if (command === undefined) {
    console.error(`origin: unknown command "${name}"\n\n${overview()}`)
    return 2
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage)
    return 0
  }
  try {
    return await command.run(rest)
  } catch (err) {
    if (err instanceof OriginError && err.code === 'E_ARGS') {
      console.error(`origin ${name}: ${err.message}\n\n${command.usage}`)
      return 2
    }
    console.error(`origin ${name}: ${errorMessage(err)}`)
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
