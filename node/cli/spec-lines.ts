/**
 * Where a schema error is in its file: nodes name it by JSON pointer (`/placement/kind`);
 * an editor or CI wants a line. This finds the line and column of the value the pointer
 * names, in a JSON file or in the object a TS spec exports (`export default {...}` or
 * `export default defineService({...})`), as far as the pointer can be followed in the
 * source (a computed value is pointed at where it is written).
 *
 * @example
 *   locate('services/web.json', text, '/placement/kind')   // { line: 3, column: 17 }
 */
import ts from 'typescript'

export function locate (file: string, text: string, pointer: string): { line: number, column: number } | undefined {
  const source = file.endsWith('.json') ? ts.parseJsonText(file, text) : ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS)
  let node = file.endsWith('.json') ? jsonRoot(source) : exportedRoot(source)
  if (node === undefined) return undefined
  for (const step of pointer.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    const next = child(node, step)
    if (next === undefined) break
    node = next
  }
  const { line, character } = source.getLineAndCharacterOfPosition(node.getStart(source))
  return { line: line + 1, column: character + 1 }
}

function jsonRoot (source: ts.SourceFile): ts.Node | undefined {
  const st = source.statements[0]
  return st !== undefined && ts.isExpressionStatement(st) ? st.expression : undefined
}

/** The value of `export default`, through a wrapping call (`defineService({...})`) and `as`/`satisfies`. */
function exportedRoot (source: ts.SourceFile): ts.Node | undefined {
  const st = source.statements.find((s): s is ts.ExportAssignment => ts.isExportAssignment(s))
  return st === undefined ? undefined : unwrap(st.expression)
}

function unwrap (e: ts.Expression): ts.Expression {
  for (;;) {
    if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e)) e = e.expression
    else if (ts.isCallExpression(e) && e.arguments.length > 0) e = e.arguments[0]!
    else return e
  }
}

/** The property `key` of an object literal (the value), or element `key` of an array literal. */
function child (node: ts.Node, key: string): ts.Node | undefined {
  const e = ts.isPropertyAssignment(node) ? unwrap(node.initializer) : ts.isExpression(node) ? unwrap(node) : node
  if (ts.isObjectLiteralExpression(e)) {
    for (const p of e.properties) {
      if (p.name === undefined) continue
      const name = ts.isIdentifier(p.name) || ts.isStringLiteral(p.name) || ts.isNumericLiteral(p.name) ? p.name.text : undefined
      if (name !== key) continue
      return ts.isPropertyAssignment(p) ? unwrap(p.initializer) : p
    }
    return undefined
  }
  if (ts.isArrayLiteralExpression(e) && /^\d+$/.test(key)) {
    const el = e.elements[Number(key)]
    return el === undefined ? undefined : unwrap(el)
  }
  return undefined
}
