/**
 * A small YAML writer for the manifests the builder makes: block mappings and sequences,
 * scalars written plain when YAML reads them back as the same string, else double-quoted
 * (JSON string syntax is valid YAML). Enough for Kubernetes objects; not a general library.
 */

type Value = string | number | boolean | null | Value[] | { [key: string]: Value | undefined }

/** YAML 1.1 and 1.2 words that a plain scalar would turn into a boolean or null. */
const SPECIAL = /^(true|false|yes|no|on|off|y|n|null|~)$/i
const NUMBERLIKE = /^[-+.]?(\d|\.\d)|^0[xob]|^\.(inf|nan)$/i
const PLAIN = /^[A-Za-z0-9_/$(.][A-Za-z0-9_./:$()@=+-]*( [A-Za-z0-9_./:$()@=+-]+)*$/

function scalar (v: string | number | boolean | null): string {
  if (v === null) return 'null'
  if (typeof v !== 'string') return String(v)
  if (v !== '' && PLAIN.test(v) && !SPECIAL.test(v) && !NUMBERLIKE.test(v) && !v.includes(': ') && !v.endsWith(':')) return v
  return JSON.stringify(v)
}

function isScalar (v: Value): v is string | number | boolean | null {
  return v === null || typeof v !== 'object'
}

function isEmpty (v: Value): boolean {
  return !isScalar(v) && (Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0)
}

function lines (v: Value, indent: string): string[] {
  const out: string[] = []
  if (Array.isArray(v)) {
    for (const item of v) {
      if (isScalar(item) || isEmpty(item)) { out.push(`${indent}- ${isScalar(item) ? scalar(item) : Array.isArray(item) ? '[]' : '{}'}`); continue }
      const inner = lines(item, `${indent}  `)
      // The first line of a nested block goes on the dash's line.
      out.push(`${indent}- ${inner[0].slice(indent.length + 2)}`, ...inner.slice(1))
    }
    return out
  }
  if (isScalar(v)) return [`${indent}${scalar(v)}`]
  for (const [key, item] of Object.entries(v)) {
    if (item === undefined) continue
    const k = scalar(key)
    if (isScalar(item)) out.push(`${indent}${k}: ${scalar(item)}`)
    else if (isEmpty(item)) out.push(`${indent}${k}: ${Array.isArray(item) ? '[]' : '{}'}`)
    else if (Array.isArray(item)) out.push(`${indent}${k}:`, ...lines(item, indent))
    else out.push(`${indent}${k}:`, ...lines(item, `${indent}  `))
  }
  return out
}

/** One YAML document for `value`, with `comment` lines (if any) above it. */
export function toYaml (value: Value, comment: string[] = []): string {
  return [...comment.map((c) => `# ${c}`.trimEnd()), ...lines(value, '')].join('\n') + '\n'
}

export type YamlValue = Value
