/**
 * The protocol tables are what keeps a handler and its client in agreement: snippets that
 * use the real tables (node/protocol) are type-checked with the TypeScript compiler, and
 * each wrong use must be an error on the line that says so. If a table stops carrying its
 * types (a method typed `any`, a name that is just `string`), the wrong uses compile and
 * this fails.
 */
import test from 'ava'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import ts from 'typescript'

/** The repository: the sources are type-checked, not the compiled dist/. */
const root = [resolve(__dirname, '../../..'), resolve(__dirname, '../..')].find((d) => existsSync(join(d, 'node/protocol/table.ts'))) ?? ''

const header = `
import { call, serve, stream } from '../../node/protocol/table'
import { mesh } from '../../node/protocol/mesh'
import { operator } from '../../node/protocol/operator'
import { apiPath } from '../../node/protocol/local-api'
import type { Connection, Transport } from '../../node/transport/types'
declare const t: Transport
declare const conn: Connection
export {}
`

/** Each snippet: its body, and whether each line marked `// error` (and no other) must be an error. */
const snippets: Record<string, string> = {
  agreeing: `
serve(t, operator, 'cluster.ping', () => ({ node: 'a', at: 1 }))
serve(t, operator, 'cluster.forget', (p) => ({ forgotten: p.node }))
serve(t, mesh, 'proxy.streamPort', async () => 7401)
serve(t, mesh, 'supervisor.logs', async function * (p) { yield { instance: p.service, text: '' } })
async function client (): Promise<void> {
  const pong: { node: string, at: number } = await call(conn, operator, 'cluster.ping')
  const port: number = await call(conn, mesh, 'proxy.streamPort', undefined, { timeoutMs: 100 })
  const gone: { forgotten: string } = await call(conn, operator, 'cluster.forget', { node: 'c' })
  for await (const item of stream(conn, operator, 'cluster.logs', { node: 'a', service: 'web' })) void item
  void pong; void port; void gone
  void apiPath('owner', { service: 'kv', key: 'user/1' })
}
void client
`,
  'a handler returning another type': `
serve(t, operator, 'cluster.ping', () => ({ node: 'a' })) // error
serve(t, mesh, 'proxy.streamPort', () => 'port 7401') // error
`,
  'a client expecting another result': `
async function client (): Promise<void> {
  const pong: { node: string, ms: number } = await call(conn, operator, 'cluster.ping') // error
  const port: string = await call(conn, mesh, 'proxy.streamPort') // error
  void pong; void port
}
void client
`,
  'a wrong payload': `
async function client (): Promise<void> {
  await call(conn, operator, 'cluster.forget', { id: 'c' }) // error
  await call(conn, operator, 'cluster.where') // error
  await call(conn, mesh, 'node.drain', { drained: 'yes', operator: 'alice' }) // error
  serve(t, operator, 'cluster.where', (p: { name: string }) => { throw new Error(p.name) }) // error
  void apiPath('owner', { service: 'kv' }) // error
}
void client
`,
  'an unknown method name, or a stream called as a call': `
async function client (): Promise<void> {
  await call(conn, operator, 'cluster.reboot') // error
  await call(conn, mesh, 'cluster.ping') // error
  serve(t, mesh, 'mesh.pong', () => 'pong') // error
  await call(conn, operator, 'cluster.logs', { node: 'a', service: 'web' }) // error
}
void client
`
}

function typeCheck (): Map<string, ts.Diagnostic[]> {
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile)
  const options = ts.parseJsonConfigFileContent(config.config, ts.sys, root).options
  options.noEmit = true
  options.noUnusedLocals = false
  const files = new Map(Object.entries(snippets).map(([name, body], i) => [join(root, 'test', 'unit', `__protocol_snippet_${i}.ts`), { name, text: header + body }]))
  const host = ts.createCompilerHost(options)
  const { getSourceFile, fileExists, readFile } = host
  host.fileExists = (f) => files.has(f) || fileExists.call(host, f)
  host.readFile = (f) => files.get(f)?.text ?? readFile.call(host, f)
  host.getSourceFile = (f, v, ...rest) => {
    const s = files.get(f)
    return s === undefined ? getSourceFile.call(host, f, v, ...rest) : ts.createSourceFile(f, s.text, v, true)
  }
  const program = ts.createProgram([...files.keys()], options, host)
  const out = new Map<string, ts.Diagnostic[]>()
  for (const [file, { name }] of files) {
    const sf = program.getSourceFile(file)
    if (sf === undefined) throw new Error(`no source file for ${name}`)
    out.set(name, [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)])
  }
  return out
}

const lineOf = (d: ts.Diagnostic): number => d.file === undefined || d.start === undefined ? -1 : d.file.getLineAndCharacterOfPosition(d.start).line
const text = (d: ts.Diagnostic): string => `line ${lineOf(d) + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`

let checked: Map<string, ts.Diagnostic[]> | undefined
const diagnostics = (name: string): ts.Diagnostic[] => {
  checked ??= typeCheck()
  return checked.get(name) ?? []
}

test('protocol types: a handler and a client that agree with the tables compile', (t) => {
  t.not(root, '', 'the sources are found')
  t.deepEqual(diagnostics('agreeing').map(text), [])
})

for (const name of Object.keys(snippets).filter((n) => n !== 'agreeing')) {
  test(`protocol types: ${name} fails tsc on exactly the marked lines`, (t) => {
    const lines = (header + snippets[name]).split('\n')
    const marked = lines.flatMap((l, i) => l.endsWith('// error') ? [i] : [])
    const found = diagnostics(name)
    t.true(marked.length > 0)
    t.deepEqual([...new Set(found.map(lineOf))].sort((a, b) => a - b), marked, found.map(text).join('\n'))
  })
}
