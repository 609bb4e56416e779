import { EXACT_POW10, decimalToDouble, scaleByPow10, scaled } from './json-decimal'
import { type TensorData, type TensorForm, type WireDType, shortestFloat32 } from './tensor'

/**
 * A tensor for `writeJson` to write in place: the same four things `encodeTensor` takes, and
 * the same JSON once written, without building it as JS values first.
 */
export class TensorOut {
  constructor (readonly dtype: WireDType, readonly shape: readonly number[], readonly data: TensorData, readonly form: TensorForm) {}
}

/**
 * Writes `value` as JSON bytes: what `JSON.stringify` writes once every `TensorOut` in it is
 * replaced by `encodeTensor` of the same arguments (float32 in its shortest round-trip form as
 * encodeTensor writes it, float64 in JS's shortest form, int64 exactly, base64 straight from
 * the tensor's bytes). Two departures, both as the API asks: int64 past 2^53 are written
 * exactly (encodeTensor rounds them through a double), and plain numbers outside tensors that
 * are not finite are written "NaN", "Infinity", "-Infinity" (JSON.stringify writes null).
 */
export function writeJson (value: unknown): Buffer {
  const w = new Writer()
  w.value(value, 0)
  return w.bytes()
}

const QUOTE = 0x22
const COMMA = 0x2c
const MINUS = 0x2d
const DOT = 0x2e
const ZERO = 0x30
const COLON = 0x3a
const LBRACKET = 0x5b
const RBRACKET = 0x5d
const LBRACE = 0x7b
const RBRACE = 0x7d

/** Bytes one element may take (`-0.0000012345678901234567`, `"-Infinity"`) and its comma, with room to spare. */
const ELEMENT_BYTES = 28
/** Elements written between two capacity checks. */
const CHUNK = 4096
/** Bytes of the tensor base64-encoded per step (a multiple of 3: the pieces join seamlessly). */
const BASE64_CHUNK = 3 << 20
/** Plain values nested deeper than this are refused (a cycle, not a result). */
const MAX_PLAIN_DEPTH = 100

/** 10^s for s in [-40, 60] (every power float32 digits need), each the double nearest to it. */
const POW10_OFFSET = 40
const POW10 = Float64Array.from({ length: 101 }, (_, i) => Number(`1e${i - POW10_OFFSET}`))

/** How a tensor's elements are written. */
const FLOAT32 = 0
const FLOAT64 = 1
const INT32 = 2
const INT64 = 3

/** log10(2), for the decimal exponent of a binary one. */
const LOG10_2 = Math.log10(2)

/** Digits of 0..99 in pairs, as characters: PAIRS[2n] tens, PAIRS[2n + 1] ones. */
const PAIRS = Uint8Array.from({ length: 200 }, (_, i) => ZERO + (i % 2 === 0 ? Math.floor(i / 20) : (i >> 1) % 10))

/** Digit characters of the number being written. */
const DIGITS = new Uint8Array(32)

const BITS = new Float64Array(1)
const WORDS = new Uint32Array(BITS.buffer)

class Writer {
  private buf = Buffer.allocUnsafe(1024)
  private pos = 0
  /** How the elements of the tensor being written are written, and an int64 tensor's 32-bit words. */
  private kind = FLOAT32
  private words: Int32Array | undefined

  bytes (): Buffer {
    return this.buf.subarray(0, this.pos)
  }

  /** Makes room for n more bytes. */
  private reserve (n: number): void {
    if (this.pos + n <= this.buf.length) return
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.pos + n))
    this.buf.copy(grown, 0, 0, this.pos)
    this.buf = grown
  }

  private ascii (s: string): void {
    this.reserve(s.length)
    this.pos += this.buf.write(s, this.pos, 'latin1')
  }

  private byte (c: number): void {
    this.reserve(1)
    this.buf[this.pos++] = c
  }

  // ---- plain JSON ---------------------------------------------------------------------------

  value (v: unknown, depth: number): void {
    if (depth > MAX_PLAIN_DEPTH) throw new TypeError(`writeJson: nested deeper than ${MAX_PLAIN_DEPTH} levels (a cycle?)`)
    if (v instanceof TensorOut) return this.tensor(v)
    switch (typeof v) {
      case 'number':
        this.reserve(ELEMENT_BYTES)
        return this.float64(v)
      case 'string': {
        const s = JSON.stringify(v)
        this.reserve(3 * s.length)
        this.pos += this.buf.write(s, this.pos, 'utf8')
        return
      }
      case 'boolean': return this.ascii(v ? 'true' : 'false')
      case 'bigint': return this.ascii(v.toString())
      case 'object': break
      default: throw new TypeError(`writeJson: cannot write a ${typeof v}`)
    }
    if (v === null) return this.ascii('null')
    if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return this.value(JSON.parse(JSON.stringify(v)), depth)
    if (Array.isArray(v)) {
      this.byte(LBRACKET)
      for (let i = 0; i < v.length; i++) {
        if (i > 0) this.byte(COMMA)
        const item: unknown = v[i]
        // as JSON.stringify: a hole where no JSON value is
        if (item === undefined || typeof item === 'function' || typeof item === 'symbol') this.ascii('null')
        else this.value(item, depth + 1)
      }
      return this.byte(RBRACKET)
    }
    this.byte(LBRACE)
    let first = true
    for (const [key, item] of Object.entries(v)) {
      if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue
      if (!first) this.byte(COMMA)
      first = false
      this.value(key, depth + 1)
      this.byte(COLON)
      this.value(item, depth + 1)
    }
    this.byte(RBRACE)
  }

  // ---- tensors ------------------------------------------------------------------------------

  private tensor (t: TensorOut): void {
    const data = t.data
    this.words = data instanceof BigInt64Array ? new Int32Array(data.buffer, data.byteOffset, 2 * data.length) : undefined
    this.kind = this.words !== undefined ? INT64 : t.dtype === 'float32' ? FLOAT32 : data instanceof Int32Array ? INT32 : FLOAT64
    // room for the usual text at once: no copies while it grows element by element
    if (t.form !== 'base64') this.reserve(data.length * (t.dtype === 'float64' ? 24 : 12) + 64)
    if (t.form === 'nested') return this.nested(t)
    this.ascii(`{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data":`)
    if (t.form === 'base64') this.base64(t.data)
    else {
      this.byte(LBRACKET)
      this.elements(t, 0, t.data.length)
      this.byte(RBRACKET)
    }
    this.byte(RBRACE)
  }

  /** Base64 of the data's bytes, encoded by Node piece by piece straight into the output. */
  private base64 (data: TensorData): void {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    // with room for the brackets that close the result after it
    this.reserve(4 * Math.ceil(bytes.length / 3) + 64)
    this.buf[this.pos++] = QUOTE
    for (let i = 0; i < bytes.length; i += BASE64_CHUNK) {
      this.pos += this.buf.write(bytes.toString('base64', i, Math.min(bytes.length, i + BASE64_CHUNK)), this.pos, 'latin1')
    }
    this.buf[this.pos++] = QUOTE
  }

  /** Nested arrays as encodeTensor nests them: rows of the last dim, brackets opened and closed between rows. */
  private nested (t: TensorOut): void {
    const shape = t.shape
    const rank = shape.length
    const n = t.data.length
    if (rank === 0) return this.elements(t, 0, 1)
    if (n === 0) return this.empty(shape, 0)
    const last = shape[rank - 1]
    const index = new Array<number>(rank - 1).fill(0)
    this.reserve(rank)
    for (let d = 0; d < rank; d++) this.buf[this.pos++] = LBRACKET
    for (let start = 0; ; start += last) {
      this.elements(t, start, start + last)
      if (start + last >= n) break
      // the dims that roll over after this row close, then open again
      let closing = 1
      for (let d = rank - 2; d >= 0 && ++index[d] === shape[d]; d--) {
        index[d] = 0
        closing++
      }
      this.reserve(2 * closing + 1)
      for (let i = 0; i < closing; i++) this.buf[this.pos++] = RBRACKET
      this.buf[this.pos++] = COMMA
      for (let i = 0; i < closing; i++) this.buf[this.pos++] = LBRACKET
    }
    this.reserve(rank)
    for (let d = 0; d < rank; d++) this.buf[this.pos++] = RBRACKET
  }

  /** A shape with a zero dim: its arrays down to that dim, all empty (at most 8 levels of recursion). */
  private empty (shape: readonly number[], depth: number): void {
    this.byte(LBRACKET)
    if (depth < shape.length - 1) {
      for (let i = 0; i < shape[depth]; i++) {
        if (i > 0) this.byte(COMMA)
        this.empty(shape, depth + 1)
      }
    }
    this.byte(RBRACKET)
  }

  /** Elements [from, to) separated by commas, each as encodeTensor writes its dtype. */
  private elements (t: TensorOut, from: number, to: number): void {
    const data = t.data
    const kind = this.kind
    const words = this.words
    for (let i = from; i < to; i += CHUNK) {
      const end = Math.min(to, i + CHUNK)
      this.reserve((end - i) * ELEMENT_BYTES)
      for (let j = i; j < end; j++) {
        if (j > from) this.buf[this.pos++] = COMMA
        if (kind === FLOAT32) this.float32(data[j] as number)
        else if (kind === FLOAT64) this.float64(data[j] as number)
        else if (kind === INT32) this.integer(data[j] as number)
        else this.int64((words as Int32Array)[2 * j], (words as Int32Array)[2 * j + 1], data as BigInt64Array, j)
      }
    }
  }

  // ---- numbers (room for ELEMENT_BYTES already reserved) ------------------------------------

  /** A non-finite float as the API writes it; false for a finite one. */
  private nonFinite (v: number): boolean {
    if (Number.isFinite(v)) return false
    this.pos += this.buf.write(v === Infinity ? '"Infinity"' : v === -Infinity ? '"-Infinity"' : '"NaN"', this.pos, 'latin1')
    return true
  }

  /**
   * A float32 value as encodeTensor writes it: the nearest decimal of 6, 7 or 8 digits (as
   * toPrecision rounds) that reads back as the same float32, else the value as a double. The
   * three candidates come from one scaling of v; a candidate reads back when its distance to v
   * is below half the gap to the next float32, checked exactly (`readsBack32`) only when the
   * two are too close to tell.
   */
  private float32 (v: number): void {
    if (this.nonFinite(v)) return
    if (v === 0) {
      this.buf[this.pos++] = ZERO
      return
    }
    const a = v < 0 ? -v : v
    // nothing reads back as a float32 unless v is one
    if (Math.fround(a) !== a || a < 1e-46 || a > 3.5e38) return this.float64(v)
    BITS[0] = a
    const high = WORDS[1]
    const e2 = (high >>> 20) - 1023 // a in [2^e2, 2^(e2+1))
    // the gap below a power of two is half the gap above (not so among subnormals)
    const powerOfTwo = e2 > -126 && (high & 0xfffff) === 0 && WORDS[0] === 0
    // half the gap between float32 neighbours of a
    WORDS[1] = (high & 0x7ff00000) - (24 << 20)
    WORDS[0] = 0
    const half = e2 < -126 ? 2 ** -150 : BITS[0]
    // the decimal exponent k of the first digit is that of 2^(e2+1), or one less
    let k = Math.floor((e2 + 1) * LOG10_2)
    let y = a * POW10[7 - k + POW10_OFFSET]
    if (y < 1e7) y = a * POW10[7 - --k + POW10_OFFSET]
    else if (y >= 1e8) y = a * POW10[7 - ++k + POW10_OFFSET]
    // y = a × 10^(7-k) in [1e7, 1e8), with an error of a few 1e-8
    const int8 = Math.floor(y)
    const frac8 = y - int8
    for (let p = 6; p <= 8; p++) {
      const scale = p === 8 ? 1 : p === 7 ? 10 : 100
      const inverse = p === 8 ? 1 : p === 7 ? 0.1 : 0.01
      // (x × 0.1 and x × 0.01 round up, never past the next integer: their floors are exact)
      const int = Math.floor(int8 * inverse)
      const frac = (int8 - int * scale + frac8) * inverse
      // as toPrecision rounds: a tie goes up; a tie cannot be told from the error here
      if (frac > 0.499999 && frac < 0.500001) return this.ascii(String(shortestFloat32(v)))
      const up = frac > 0.5
      let d = up ? int + 1 : int
      let e = k
      if (d === EXACT_POW10[p]) {
        d = EXACT_POW10[p - 1]
        e++
      }
      if (d < EXACT_POW10[p - 1] || d > EXACT_POW10[p]) return this.ascii(String(shortestFloat32(v)))
      const dist = up ? 1 - frac : frac
      const limit = (powerOfTwo && !up ? half / 2 : half) * POW10[7 - k + POW10_OFFSET] * inverse
      if (dist < limit * (1 - 1e-6) || (dist <= limit * (1 + 1e-6) && readsBack32(d, e - p + 1, a))) {
        putDigits(d, 0, p)
        return this.decimal(v < 0, p, e + 1)
      }
    }
    this.float64(v)
  }

  /**
   * A double in JS's shortest form (`String(v)`): the nearest decimal of 15, 16 or 17 digits
   * that reads back as v. All three come from one scaling of v to 17 digits as a double-double;
   * V8 writes what that cannot decide (a rounding within 1e-7 of a tie, values past 1e±260).
   */
  private float64 (v: number): void {
    if (this.nonFinite(v)) return
    if (v === 0) {
      this.buf[this.pos++] = ZERO
      return
    }
    const a = v < 0 ? -v : v
    if (!(a >= 1e-260 && a <= 1e260)) return this.ascii(String(v))
    BITS[0] = a
    const high = WORDS[1]
    const powerOfTwo = (high & 0xfffff) === 0 && WORDS[0] === 0
    // half the gap to the next double, relative to a (below a power of two: half that)
    WORDS[1] = (high & 0x7ff00000) - (53 << 20)
    WORDS[0] = 0
    const half = BITS[0] / a
    // the decimal exponent k of the first digit is that of 2^(e2+1), or one less
    let k = Math.floor((((high >>> 20) - 1022) * LOG10_2))
    scaleByPow10(a, 0, 16 - k)
    // y = x + lo must lie in [1e16, 1e17); x alone may have rounded onto either bound
    let x = scaled.hi
    if (x < 1e16 || (x === 1e16 && scaled.lo < 0)) scaleByPow10(a, 0, 16 - --k)
    else if (x > 1e17 || (x === 1e17 && scaled.lo >= 0)) scaleByPow10(a, 0, 16 - ++k)
    x = scaled.hi
    const y = x + scaled.lo
    if (!(y >= 1e16 - 1 && y < 1e17)) return this.ascii(String(v))
    // y = H × 10^8 + L + frac exactly: integers H < 10^9, L < 10^8, and frac in [0, 1)
    const fx = Math.floor(x)
    const f = (x - fx) + scaled.lo
    const whole = Math.floor(f)
    const frac = f - whole
    let H = Math.floor(fx / 1e8)
    let L = fx - H * 1e8 + whole
    while (L < 0) {
      L += 1e8
      H--
    }
    while (L >= 1e8) {
      L -= 1e8
      H++
    }
    for (let p = 15; p <= 17; p++) {
      // y / 10^(17-p) = hi × 10^8 + lo + fr
      const scale = p === 17 ? 1 : p === 16 ? 10 : 100
      const inverse = p === 17 ? 1 : p === 16 ? 0.1 : 0.01
      const hq = Math.floor(H * inverse)
      const lq = Math.floor(L * inverse)
      let hi = hq
      let lo = (H - hq * scale) * (1e8 * inverse) + lq
      const fr = (L - lq * scale + frac) * inverse
      if (fr > 0.4999999 && fr < 0.5000001) break
      let up = fr > 0.5
      if (p < 17) {
        // the nearest p digits read back when within half the gap to v's neighbour
        const yp = y * inverse
        let dist = up ? 1 - fr : fr
        let limit = (powerOfTwo && !up ? half / 2 : half) * yp
        if (dist > limit * (1 + 1e-9) && powerOfTwo && !up) {
          // the decimal above a power of two is farther, but has the wider half-gap
          up = true
          dist = 1 - fr
          limit = half * yp
        }
        if (dist > limit * (1 + 1e-9)) continue
        if (dist > limit * (1 - 1e-9)) break
      }
      // (17 digits always read back: their spacing is below half of any gap between doubles)
      if (up && ++lo === 1e8) {
        lo = 0
        hi++
      }
      let e = k
      if (hi === EXACT_POW10[p - 8]) {
        // rounded up to 10^p
        hi = EXACT_POW10[p - 9]
        e++
      }
      if (hi < EXACT_POW10[p - 9] || hi >= EXACT_POW10[p - 8]) break
      putDigits(hi, 0, p - 8)
      putDigits(lo, p - 8, 8)
      return this.decimal(v < 0, p, e + 1)
    }
    this.ascii(String(v))
  }

  /** An int64 from its two 32-bit words (little-endian), exactly. */
  private int64 (low: number, high: number, data: BigInt64Array, i: number): void {
    // within ±2^53 the value is a double exactly
    if (high >= -2097152 && high < 2097152) return this.integer(high * 4294967296 + (low >>> 0))
    this.pos += this.buf.write(data[i].toString(), this.pos, 'latin1')
  }

  /** An integer of magnitude below 2^53. */
  private integer (v: number): void {
    if (v < 0) {
      this.buf[this.pos++] = MINUS
      v = -v
    }
    let n: number
    if (v < 1e8) {
      n = digitCount(v)
      putDigits(v, 0, n)
    } else {
      const high = Math.floor(v / 1e8)
      n = digitCount(high)
      putDigits(high, 0, n)
      putDigits(v - high * 1e8, n, 8)
      n += 8
    }
    const buf = this.buf
    let p = this.pos
    for (let i = 0; i < n; i++) buf[p++] = DIGITS[i]
    this.pos = p
  }

  /**
   * The decimal 0.DIGITS[0..digits) × 10^point in the form of JS's Number::toString: plain
   * from 1e-7 up to 1e21, with an exponent otherwise; trailing zeros dropped.
   */
  private decimal (neg: boolean, digits: number, point: number): void {
    while (digits > 1 && DIGITS[digits - 1] === ZERO) digits--
    const buf = this.buf
    let p = this.pos
    if (neg) buf[p++] = MINUS
    if (digits <= point && point <= 21) {
      for (let i = 0; i < digits; i++) buf[p++] = DIGITS[i]
      for (let i = digits; i < point; i++) buf[p++] = ZERO
    } else if (point > 0 && point <= 21) {
      for (let i = 0; i < point; i++) buf[p++] = DIGITS[i]
      buf[p++] = DOT
      for (let i = point; i < digits; i++) buf[p++] = DIGITS[i]
    } else if (point > -6 && point <= 0) {
      buf[p++] = ZERO
      buf[p++] = DOT
      for (let i = point; i < 0; i++) buf[p++] = ZERO
      for (let i = 0; i < digits; i++) buf[p++] = DIGITS[i]
    } else {
      buf[p++] = DIGITS[0]
      if (digits > 1) {
        buf[p++] = DOT
        for (let i = 1; i < digits; i++) buf[p++] = DIGITS[i]
      }
      buf[p++] = 0x65
      let e = point - 1
      buf[p++] = e < 0 ? MINUS : 0x2b
      if (e < 0) e = -e
      if (e >= 100) buf[p++] = ZERO + Math.floor(e / 100)
      if (e >= 10) buf[p++] = ZERO + Math.floor(e / 10) % 10
      buf[p++] = ZERO + e % 10
    }
    this.pos = p
  }
}

/** Writes the `count` decimal digit characters of the integer x (below 10^9) into DIGITS from `at`, zero-padded, two at a time. */
function putDigits (x: number, at: number, count: number): void {
  let i = at + count
  while (i - at >= 2) {
    // x × 0.01 rounds up, never past the next integer: its floor is exact
    const q = Math.floor(x * 0.01)
    const r = (x - 100 * q) << 1
    DIGITS[--i] = PAIRS[r + 1]
    DIGITS[--i] = PAIRS[r]
    x = q
  }
  if (i > at) DIGITS[at] = ZERO + x
}

/** Decimal digits of an integer in [0, 1e9). */
function digitCount (x: number): number {
  let n = 1
  while (n < 9 && x >= EXACT_POW10[n]) n++
  return n
}

/** Whether Number() of the decimal d × 10^q, rounded to float32, is a (encodeTensor's test). */
function readsBack32 (d: number, q: number, a: number): boolean {
  let r = q >= 0 && q <= 22 ? d * EXACT_POW10[q] : q < 0 && q >= -22 ? d / EXACT_POW10[-q] : decimalToDouble(d, 0, 0, q)
  if (r < 0) r = Number(`${d}e${q}`)
  return Math.fround(r) === a
}
