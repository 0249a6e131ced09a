/**
 * Strict JSON with positions: the node parses JSON spec files with it, and the TS evaluator
 * uses it for JSON files a TS spec imports. Kept apart from load.ts so the evaluator process
 * loads only what it needs.
 */
export type JsonParse = { ok: true, value: unknown } | { ok: false, line: number, column: number, message: string }

class JsonSyntax {
  constructor (readonly at: number, readonly message: string) {}
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y
const LITERALS: Array<[string, unknown]> = [['true', true], ['false', false], ['null', null]]

/**
 * Strict JSON with the line and column of the first error (JSON.parse's messages do not
 * carry a position on every Node version). Duplicate field names are an error too.
 */
export function parseJson (text: string): JsonParse {
  let i = 0
  const fail = (message: string, at = i): never => { throw new JsonSyntax(at, message) }
  const found = (): string => i >= text.length ? 'the end of the file' : JSON.stringify(text[i])
  const space = (): void => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++ }

  function string (): string {
    const start = i++
    for (;;) {
      if (i >= text.length) fail('unterminated string', start)
      const c = text.charCodeAt(i)
      if (c === 0x22) break
      if (c < 0x20) fail('a string cannot hold a raw line break or control character (write \\n)')
      if (c !== 0x5c) { i++; continue }
      const e = text[i + 1] ?? ''
      if (e === 'u' ? !/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6)) : e === '' || !'"\\/bfnrt'.includes(e)) fail('invalid escape sequence')
      i += e === 'u' ? 6 : 2
    }
    i++
    return JSON.parse(text.slice(start, i)) as string
  }

  function list<T> (close: string, what: string, item: () => T): T[] {
    const items: T[] = []
    i++
    space()
    if (text[i] === close) { i++; return items }
    for (;;) {
      items.push(item())
      space()
      if (text[i] === close) { i++; return items }
      if (text[i] !== ',') fail(`expected "," or "${close}" after ${what}, found ${found()}`)
      const comma = i++
      space()
      if (text[i] === close) fail('a trailing comma is not allowed in JSON', comma)
    }
  }

  function value (depth: number): unknown {
    if (depth > 256) fail('nested too deeply')
    space()
    const c = text[i]
    if (c === '"') return string()
    if (c === '[') return list(']', 'an array item', () => value(depth + 1))
    if (c === '{') {
      const obj: Record<string, unknown> = {}
      list('}', 'a field', () => {
        space()
        if (text[i] !== '"') fail(`expected a field name in double quotes, found ${found()}`)
        const at = i
        const key = string()
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate field ${JSON.stringify(key)}`, at)
        space()
        if (text[i] !== ':') fail(`expected ":" after the field name, found ${found()}`)
        i++
        // defineProperty: a field named "__proto__" stays a field
        Object.defineProperty(obj, key, { value: value(depth + 1), enumerable: true, writable: true, configurable: true })
      })
      return obj
    }
    NUMBER.lastIndex = i
    const n = NUMBER.exec(text)
    if (n !== null) { i += n[0].length; return Number(n[0]) }
    const literal = LITERALS.find(([word]) => text.startsWith(word, i))
    if (literal !== undefined) { i += literal[0].length; return literal[1] }
    return fail(i >= text.length ? 'unexpected end of the file' : `unexpected ${found()}`)
  }

  try {
    space()
    if (i >= text.length) fail('the file is empty')
    const v = value(0)
    space()
    if (i < text.length) fail(`unexpected ${found()} after the end of the JSON value`)
    return { ok: true, value: v }
  } catch (err) {
    if (!(err instanceof JsonSyntax)) throw err
    const before = text.slice(0, err.at)
    const line = before.split('\n').length
    return { ok: false, line, column: err.at - before.lastIndexOf('\n'), message: `invalid JSON: ${err.message}` }
  }
}
