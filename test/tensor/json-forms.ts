/**
 * JSON text in every legal spelling, for the reader's and writer's tests: numbers printed in
 * every way, strings with every escape, whitespace anywhere; and a deep equality that tells
 * -0 from 0 and compares NaN with itself.
 */

/** Text written verbatim into the JSON (a number V8 would print otherwise, a duplicate key). */
export class Raw {
  constructor (readonly text: string) {}
}

/** An object written with the same key more than once: `entries` in order. */
export class Entries {
  constructor (readonly entries: Array<[string, unknown]>) {}
}

/** A small deterministic generator (mulberry32), so that a fast-check seed replays a text. */
export function random (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Ways to print a finite double as a JSON number, some of them rounding it (filter on JSON.parse for the exact ones). */
export function numberTexts (v: number): string[] {
  const [mantissa, exp] = v.toExponential(16).split('e')
  const negative = mantissa.startsWith('-')
  const digits = mantissa.replace('-', '').replace('.', '').replace(/^0+(?=\d)/, '')
  const out = [String(v), v.toPrecision(17), v.toExponential(), v.toExponential(20), v.toPrecision(1 + Number(digits.slice(-2)) % 21)]
  if (Math.abs(v) < 1e21) out.push(v.toFixed(20), v.toFixed(100))
  // the 17 significant digits as one integer with the exponent moved: 12345678901234567e-20
  const shifted = Number(exp) - 16
  out.push(`${negative ? '-' : ''}${digits}e${shifted}`)
  // upper-case E, an explicit sign and leading zeros in the exponent
  out.push(`${negative ? '-' : ''}${digits}E${shifted < 0 ? '-' : '+'}${String(Math.abs(shifted)).padStart(4, '0')}`)
  // leading zeros in the fraction
  out.push(`${negative ? '-' : ''}0.000${digits}e${Number(exp) + 4}`)
  if (Object.is(v, -0)) out.push('-0', '-0.0', '-0E+7')
  // (JSON forbids "+1e5", ".5", "5." and leading zeros: none of these produce them)
  return out
}

/** The exact decimal of the midpoint between v (finite, positive) and the next double up: a rounding tie. */
export function midpointText (v: number): string {
  const bits = new BigUint64Array(Float64Array.of(v).buffer)[0]
  const biased = Number(bits >> 52n)
  const fraction = bits & ((1n << 52n) - 1n)
  // v = m × 2^e, the midpoint (2m + 1) × 2^(e - 1)
  const m = biased === 0 ? fraction : fraction | (1n << 52n)
  const e = (biased === 0 ? 1 : biased) - 1075
  const odd = 2n * m + 1n
  if (e - 1 >= 0) return (odd << BigInt(e - 1)).toString()
  const k = 1 - e // midpoint = odd × 5^k / 10^k
  return `${(odd * 5n ** BigInt(k)).toString()}e-${k}`
}

const WHITESPACE = ['', '', '', ' ', '\n', '\t', '\r\n  ']
const SHORT_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '/': '\\/', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * `value` as JSON text in a random legal spelling: whitespace between tokens, characters
 * escaped at random (short escapes, \u in either case, surrogate pairs as two escapes),
 * numbers in a random one of the forms of `numberTexts` that keep their value. Raw and Entries are written as they say.
 */
export function looseJson (value: unknown, seed: number): string {
  const rnd = random(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  const ws = (): string => pick(WHITESPACE)
  const str = (s: string): string => {
    let out = '"'
    for (const ch of s.split('')) {
      const code = ch.charCodeAt(0)
      const escape = ch === '"' || ch === '\\' || code < 0x20 || rnd() < 0.15
      if (!escape) out += ch
      else if (SHORT_ESCAPES[ch] !== undefined && rnd() < 0.5) out += SHORT_ESCAPES[ch]
      else {
        const hex = code.toString(16).padStart(4, '0')
        out += '\\u' + (rnd() < 0.5 ? hex : hex.toUpperCase())
      }
    }
    return out + '"'
  }
  const write = (v: unknown): string => {
    if (v instanceof Raw) return v.text
    if (v === undefined) return 'null'
    if (typeof v === 'number') return Number.isFinite(v) ? pick(numberTexts(v).filter(s => Object.is(JSON.parse(s), v))) : String(v)
    if (typeof v === 'string') return str(v)
    if (v === null || typeof v === 'boolean') return String(v)
    if (Array.isArray(v)) return '[' + ws() + v.map(x => write(x)).join(ws() + ',' + ws()) + ws() + ']'
    const entries = (v instanceof Entries ? v.entries : Object.entries(v as object)).filter(([, x]) => x !== undefined)
    return '{' + ws() + entries.map(([k, x]) => str(k) + ws() + ':' + ws() + write(x)).join(ws() + ',' + ws()) + ws() + '}'
  }
  return ws() + write(value) + ws()
}

/** Deep equality of JSON values in which -0 differs from 0 and NaN equals NaN; the first difference, or undefined. */
export function difference (a: unknown, b: unknown, path = '$'): string | undefined {
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b) ? undefined : `${path}: ${String(a)} vs ${String(b)}`
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b ? undefined : `${path}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`
  if (Array.isArray(a) !== Array.isArray(b)) return `${path}: array vs object`
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.join('\u0000') !== kb.join('\u0000')) return `${path}: keys ${JSON.stringify(ka)} vs ${JSON.stringify(kb)}`
  for (const k of ka) {
    const d = difference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`)
    if (d !== undefined) return d
  }
  return undefined
}
