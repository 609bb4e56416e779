import fc from 'fast-check'

/**
 * Request bodies as sent on the wire. A `Raw` node stands for JSON text that JSON.stringify
 * cannot write: integers beyond 2^53 with every digit, nesting deeper than its recursion allows.
 */
export class Raw {
  constructor (readonly text: string, readonly label: string = text.length > 40 ? `${text.slice(0, 20)}…(${text.length} chars)` : text) {}
  /** How fast-check prints it in a counterexample. */
  [fc.toStringMethod] (): string { return `<raw ${this.label}>` }
}

/** A JSON integer written digit for digit (e.g. 2^63 exactly). */
export function bigInt (v: bigint): Raw { return new Raw(v.toString()) }

/** `depth` nested arrays around `inner` (text built without recursion). */
export function deepArray (depth: number, inner = '1'): Raw {
  return new Raw('['.repeat(depth) + inner + ']'.repeat(depth), `${depth} nested arrays around ${inner}`)
}

/** `depth` nested objects {"a": ...} around `inner`. */
export function deepObject (depth: number, inner = '1'): Raw {
  return new Raw('{"a":'.repeat(depth) + inner + '}'.repeat(depth), `${depth} nested objects around ${inner}`)
}

/** The JSON text of a body that may hold Raw nodes. */
export function serialize (body: unknown): string {
  const raws: Raw[] = []
  const text = JSON.stringify(body, (_k, v: unknown) => {
    if (v instanceof Raw) {
      raws.push(v)
      return `\u0000raw${raws.length - 1}\u0000`
    }
    return v
  })
  return text === undefined ? '' : text.replace(/"\\u0000raw(\d+)\\u0000"/g, (_m, i: string) => raws[Number(i)].text)
}

/** A short description of a body for failure messages (Raw nodes by their label, long strings cut). */
export function describeBody (body: unknown, max = 600): string {
  const text = JSON.stringify(body, (_k, v: unknown) => {
    if (v instanceof Raw) return `<raw ${v.label}>`
    if (typeof v === 'string' && v.length > 60) return `${v.slice(0, 40)}…(${v.length} chars)`
    return v
  }) ?? String(body)
  return text.length > max ? `${text.slice(0, max)}…` : text
}
