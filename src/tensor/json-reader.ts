import { fail, LosshubError } from '../errors'
import { bytesOf, copyBytes, setElements } from './copy-bytes'
import { base64Fits, decodeTensor, MAX_DIM, MAX_RANK } from './decode'
import { decimalToDouble, EXACT_POW10 } from './json-decimal'
import { type ReadAside, type RowRun, TAPE_HEADER, TAPE_STRIDE } from './rows-ahead'
import { type NumberRows, numberRows } from './number-row'
import { converted, DecodedTensor, type TensorData, type WireDType, sizeOf } from './tensor'

export { DecodedTensor }

/**
 * Deepest nesting of arrays and objects a body may have. A tensor is at most 8 deep, inside a
 * few levels of request object; without a bound, a body of 10^5 nested brackets would send
 * anything recursive over it (a schema validator) past the stack.
 */
export const MAX_JSON_DEPTH = 32

/**
 * Reads a JSON object body from its bytes in one pass. Top-level values under `tensorKeys`
 * become `DecodedTensor`s (decoded as `decodeTensor` does, with its errors), and so does every
 * value of an object under `tensorMaps` (named `map.name` in errors); every other value is
 * what `JSON.parse` gives, numbers bit for bit. Refuses, as INVALID_JSON naming the byte
 * position: syntax errors and nesting deeper than MAX_JSON_DEPTH (without recursion); the
 * keys `__proto__`, `constructor` and `prototype` anywhere, once the body is known to be JSON
 * (and before any tensor's error: dropping one can leave a tensor short), as INVALID_REQUEST
 * naming the key's place (`reservedKey`), never assigned to anything. Duplicate keys: the last
 * wins. With `aside`, the second half of a large tensor of numbers may be read on another
 * thread meanwhile (rows-ahead.ts).
 */
export function readBody (
  bytes: Buffer, tensorKeys: ReadonlySet<string>, tensorMaps: ReadonlySet<string> = NONE, memory: TensorMemory = OWN, aside?: ReadAside
): Record<string, unknown> {
  if (bytes.length === 0) fail('INVALID_JSON', 'body: empty; expected a JSON object')
  try {
    return new Reader(bytes, memory, aside).body(tensorKeys, tensorMaps)
  } finally {
    aside?.finish()
  }
}

/**
 * Smallest rest of a body, from a tensor's numbers on, whose second half is offered to be read
 * ahead on another thread (`ReadAside`): below it, the hop costs more than it saves.
 */
export const READ_AHEAD_BYTES = 256 * 1024

/** Bodies from this size on read rows of numbers in WebAssembly (number-row.ts); a smaller one's few numbers would not repay the copy and the calls. */
export const NUMBER_ROWS_BYTES = 16 * 1024

/** How far past the middle of a body a point to split at is looked for. */
const SPLIT_SEARCH_BYTES = 64 * 1024

/**
 * Where a decoded tensor's elements go: memory of at least `bytes` bytes that the caller
 * provides (e.g. reused memory it hands back once the request is answered), or undefined for
 * memory of the tensor's own.
 */
export type TensorMemory = (bytes: number) => ArrayBufferLike | undefined

const OWN: TensorMemory = () => undefined

/**
 * Reads a JSON document of any type from its bytes, with readBody's checks (syntax with byte
 * positions, prototype keys, the depth bound) and no tensors: what JSON.parse gives, safely.
 * `root` names a document read without `dataLists` in the places of its reserved keys (by
 * default none: its keys are the body's fields).
 * With `dataLists`, in an object document, each top-level key of the set that holds an array
 * of objects has their `data` members read as numbers where they can be: nested arrays of
 * numbers (or non-finite strings) of one length per level arrive as a DecodedTensor of
 * float64 elements, its nesting as shape (the Open Inference Protocol's `inputs`); any
 * other `data` as JSON.parse gives it. `memory` and `aside` as for readBody.
 */
export function readJson (bytes: Buffer, dataLists: ReadonlySet<string> = NONE, memory: TensorMemory = OWN, aside?: ReadAside, root = ''): unknown {
  if (bytes.length === 0) fail('INVALID_JSON', 'body: empty; expected a JSON object')
  try {
    return new Reader(bytes, memory, aside, root).document(dataLists)
  } finally {
    aside?.finish()
  }
}

const NONE: ReadonlySet<string> = new Set()

const TAB = 0x09
const LF = 0x0a
const CR = 0x0d
const SPACE = 0x20
const QUOTE = 0x22
const PLUS = 0x2b
const COMMA = 0x2c
const MINUS = 0x2d
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const COLON = 0x3a
const UPPER_E = 0x45
const LBRACKET = 0x5b
const BACKSLASH = 0x5c
const RBRACKET = 0x5d
const LOWER_E = 0x65
const LBRACE = 0x7b
const RBRACE = 0x7d

/** Keys that could reach an object's prototype once the body is merged or cloned: no field or tensor name may be one. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

/** The refusal of a reserved key or name at `path` (its place, ending in it): an unknown field, as any other. */
export function reservedKey (path: string): LosshubError {
  return new LosshubError('INVALID_REQUEST', `${path}: unknown field; __proto__, constructor and prototype are never field or tensor names`)
}

/**
 * Buffer's own slicing methods (what `toString(encoding, start, end)` calls once it has
 * checked its arguments); the reader calls them once per string and per number.
 */
type Bytes = Buffer & { latin1Slice: (start: number, end: number) => string, utf8Slice: (start: number, end: number) => string }

const ELEMENT_BYTES: Record<WireDType, number> = { float32: 4, float64: 8, int32: 4, int64: 8 }

const ESCAPES: Record<number, string> = { 0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t' }

/** Characters of base64 text decoded per step: a multiple of 4 (pieces decode apart), short of V8's large objects. */
const BASE64_PIECE = 64 * 1024

/** First capacity of a tensor's element buffer; it doubles as needed. */
const FIRST_CAPACITY = 1024

/**
 * Largest element buffer kept from one body to the next (8 MiB). Reading into the same warm
 * memory each time leaves one allocation per tensor, of its exact size, instead of a chain of
 * doublings for the garbage collector; a larger tensor grows a buffer of its own.
 */
const KEPT_CAPACITY = 1 << 20

/** The element buffer bodies are read into, kept between them (parsing is synchronous). */
let kept: Float64Array<ArrayBufferLike> = new Float64Array(FIRST_CAPACITY)

class Reader {
  pos = 0
  /** Element buffer of the tensor being read (grown by doubling) and its element count. */
  private data = kept
  private count = 0
  /** The value of the exponent part `exponent` read last. */
  private exp10 = 0

  private readonly b: Bytes
  /** Where rows or numbers are being read ahead on another thread (-1: nowhere), and whether a split was offered. */
  private splitAt = -1
  private offered = false
  /** The first reserved key met: thrown once the whole input is known to be JSON. */
  private refused: LosshubError | undefined

  /**
   * Rows of numbers read in WebAssembly, for bodies large enough to be worth it (number-row.ts).
   * Each element it leaves to `row`'s own loop costs a call: once those pass 64 and one in 64
   * of the elements (numbers of 17 digits, as torch's tolist() writes float32 values, are past
   * its reach), the rest of the body is read without it.
   */
  private rows: NumberRows | undefined
  private declined = 0
  private readonly appendNumbers = (numbers: Float64Array): void => { this.append(numbers) }

  constructor (bytes: Buffer, private readonly memory: TensorMemory = OWN, private readonly aside?: ReadAside, private readonly root = '') {
    this.b = bytes as Bytes
    this.rows = bytes.length >= NUMBER_ROWS_BYTES ? numberRows() : undefined
  }

  /** The whole input as one JSON value of any type (readJson). */
  document (dataLists: ReadonlySet<string>): unknown {
    this.pos = this.ws(0)
    if (dataLists.size > 0 && this.b[this.pos] === LBRACE) return this.body(NONE, NONE, dataLists)
    const v = this.value(0, this.root)
    this.end(this.pos)
    if (this.refused !== undefined) throw this.refused
    return v
  }

  body (tensorKeys: ReadonlySet<string>, tensorMaps: ReadonlySet<string>, dataLists: ReadonlySet<string> = NONE): Record<string, unknown> {
    const b = this.b
    let p = this.ws(0)
    if (b[p] !== LBRACE) {
      // valid JSON of another type is still read through, so that syntax errors come first
      this.pos = p
      this.value(0, '')
      this.end(this.pos)
      fail('INVALID_REQUEST', 'body: must be a JSON object')
    }
    const out: Record<string, unknown> = {}
    // tensor errors wait until the whole body is known to be JSON (a syntax error comes first,
    // as when the body was parsed before decoding); a later duplicate key replaces its error
    let deferred: Map<string, LosshubError> | undefined
    p = this.ws(p + 1)
    if (b[p] === RBRACE) p++
    else {
      for (;;) {
        const key = this.key(p)
        p = this.pos
        if (RESERVED_KEYS.has(key)) this.dropReserved(key, 1)
        else if (tensorKeys.has(key)) {
          const got = this.tensor(key, p, 1)
          if (got instanceof DecodedTensor) {
            out[key] = got
            deferred?.delete(key)
          } else (deferred ??= new Map()).set(key, got)
        } else if (tensorMaps.has(key) && b[p] === LBRACE) {
          const errors = new Map<string, LosshubError>()
          out[key] = this.tensorMap(key, p, errors)
          for (const k of [...(deferred?.keys() ?? [])]) if (k.startsWith(`${key}.`)) deferred?.delete(k)
          if (errors.size > 0) for (const [k, err] of errors) (deferred ??= new Map()).set(k, err)
        } else if (dataLists.has(key) && b[p] === LBRACKET) {
          out[key] = this.dataList(p, key)
        } else {
          this.pos = p
          out[key] = this.value(1, key)
        }
        p = this.ws(this.pos)
        if (b[p] === COMMA) {
          p = this.ws(p + 1)
          continue
        }
        if (b[p] !== RBRACE) this.unexpected(p)
        p++
        break
      }
    }
    this.end(p)
    if (this.refused !== undefined) throw this.refused
    const first = deferred?.values().next()
    if (first !== undefined && first.done !== true) throw first.value
    return out
  }

  /** Reads the value at pos of the reserved key at `path` (at `depth`), and drops it, the key's refusal noted. */
  private dropReserved (path: string, depth: number): void {
    this.refused ??= reservedKey(path)
    this.value(depth, path)
  }

  // ---- tensors ------------------------------------------------------------------------------

  /**
   * The object at p (b[p] is '{') whose values are tensors, each decoded by `tensor` under the
   * name `key.name`; their errors go to `errors` (a later duplicate replaces an earlier one).
   * Leaves pos after it.
   */
  private tensorMap (key: string, p: number, errors: Map<string, LosshubError>): Record<string, DecodedTensor> {
    const out: Record<string, DecodedTensor> = {}
    this.members(p, key, 2, name => {
      const got = this.tensor(`${key}.${name}`, this.pos, 2)
      if (got instanceof DecodedTensor) {
        out[name] = got
        errors.delete(`${key}.${name}`)
      } else errors.set(`${key}.${name}`, got)
    })
    return out
  }

  /**
   * The members of the object at p (b[p] is '{', at `path`, its values at `depth`), in order:
   * `member` reads each one's value (pos is at it) and leaves pos after it; a reserved key's
   * value is dropped. Leaves pos after the object.
   */
  private members (p: number, path: string, depth: number, member: (key: string) => void): void {
    const b = this.b
    p = this.ws(p + 1)
    if (b[p] === RBRACE) {
      this.pos = p + 1
      return
    }
    for (;;) {
      const key = this.key(p)
      if (RESERVED_KEYS.has(key)) this.dropReserved(`${path}.${key}`, depth)
      else member(key)
      p = this.ws(this.pos)
      if (b[p] === COMMA) {
        p = this.ws(p + 1)
        continue
      }
      if (b[p] !== RBRACE) this.unexpected(p)
      this.pos = p + 1
      return
    }
  }

  /**
   * The tensor at p, decoded; or the error `decodeTensor` gives for it. `depth` is its nesting
   * depth in the body. Leaves pos after it.
   */
  private tensor (key: string, p: number, depth: number): DecodedTensor | LosshubError {
    const c = this.b[p]
    const fast = c === LBRACKET ? this.nested(p, depth) : c === LBRACE ? this.typed(p, depth, key) : this.scalar(p)
    if (fast !== undefined) return fast
    // anything unusual (and every malformed tensor) goes through the JSON value and
    // decodeTensor itself: the same answer and the same error, by construction
    this.pos = p
    const json = this.value(depth, key)
    try {
      const t = decodeTensor(key, json)
      return new DecodedTensor(t.dtype, t.shape, t.data, t.form)
    } catch (err) {
      if (err instanceof LosshubError) return err
      throw err
    }
  }

  /** A bare number (or non-finite string): a 0-d tensor. */
  private scalar (p: number): DecodedTensor | undefined {
    const c = this.b[p]
    let v: number | undefined
    if (c === QUOTE) v = this.nonFinite(p)
    else if (c === MINUS || (c >= ZERO && c <= NINE)) v = this.number(p)
    if (v === undefined) return undefined
    return new DecodedTensor(undefined, [], Float64Array.of(v), 'nested')
  }

  /**
   * Nested arrays at p into float64, shape and raggedness checked on the way without
   * recursion: the first array closed at each level fixes that level's length, as
   * decodeTensor's probe of first elements does. Undefined (nothing thrown) for anything
   * decodeTensor would refuse or that needs a closer look.
   */
  private nested (p: number, depth: number): DecodedTensor | undefined {
    const b = this.b
    const shape: number[] = []
    const counts: number[] = []
    let rank = -1
    let level = -1
    this.count = 0
    // rows when they are arrays, else (one flat array) numbers
    if (this.aside !== undefined) this.offer(p, b[this.ws(p + 1)] === LBRACKET)
    for (;;) {
      if (p === this.splitAt) {
        // the rows from here on were read on another thread: take them in, brackets checked
        this.splitAt = -1
        const run = (this.aside as ReadAside).rowsAt(p)
        if (run !== undefined) {
          level = this.replay(run, shape, counts, level, rank, depth)
          if (level === REPLAY_FAILED) return undefined
          if (level === REPLAY_CLOSED) {
            this.pos = run.end
            return new DecodedTensor(undefined, shape, this.take(), 'nested')
          }
          p = run.end
        }
      }
      // b[p] is '[': open an array one level deeper
      level++
      if (level >= (rank < 0 ? MAX_RANK : rank) || depth + level >= MAX_JSON_DEPTH) return undefined
      counts[level] = 0
      if (shape.length === level) shape.push(-1)
      p = this.ws(p + 1)
      let c = b[p]
      if (c === LBRACKET) continue
      if (c === RBRACKET) {
        if (rank < 0) rank = level + 1
      } else {
        // a row of numbers: only at the last level
        if (rank < 0) rank = level + 1
        else if (level !== rank - 1) return undefined
        const first = this.count
        p = this.row(p, RBRACKET)
        if (p < 0) return undefined
        counts[level] = this.count - first
      }
      // b[p] is ']': close arrays while the next token is ']'
      for (;;) {
        const n = counts[level]
        if (shape[level] < 0) shape[level] = n
        else if (shape[level] !== n) return undefined
        p++
        if (level === 0) {
          this.pos = p
          return new DecodedTensor(undefined, shape, this.take(), 'nested')
        }
        level--
        counts[level]++
        p = this.ws(p)
        c = b[p]
        if (c === RBRACKET) continue
        if (c !== COMMA) return undefined
        p = this.ws(p + 1)
        if (b[p] !== LBRACKET) return undefined
        break
      }
    }
  }

  /**
   * Numbers (or non-finite strings) separated by commas, appended to the element buffer, up
   * to the closing bracket at the returned position; -1 at any other element or token.
   */
  private row (p: number, close: number): number {
    const b = this.b
    let rows = this.rows
    let data = this.data
    let k = this.count
    for (let afterComma = false; ; afterComma = true) {
      if (afterComma && p === this.splitAt) {
        // the numbers from here on were read on another thread (a long flat array)
        this.splitAt = -1
        const run = (this.aside as ReadAside).rowsAt(p)
        if (run !== undefined) {
          this.count = k
          this.append(run.numbers)
          data = this.data
          k = this.count
          if (run.ended) return b[run.end] === close ? run.end : -1
          p = run.end
        }
      }
      if (rows !== undefined) {
        // the elements it reads, up to one it leaves to the loop below (or another thread's part)
        this.count = k
        const q = rows.read(this, b, p, this.splitAt > p ? this.splitAt : b.length, this.appendNumbers)
        data = this.data
        k = this.count
        if (rows.after) return b[q] === close ? q : -1
        if (q !== p) {
          p = q
          if (p === this.splitAt) continue
        }
        if (++this.declined >= 64 && this.declined * 64 > k) rows = this.rows = undefined
      }
      let c = b[p]
      let v: number | undefined
      if (c === MINUS || (c >= ZERO && c <= NINE)) {
        // a number without exponent is read here (number() is too large to be inlined), as
        // number() reads it: its digits as one integer, exact below 2^53, over an exact power
        // of ten for at most 22 after the dot, else by longNumber; anything else is read again
        // by number()
        let q = p
        const neg = c === MINUS
        if (neg) c = b[++q]
        const from = q
        let dotAt = -1
        let m = 0
        if (c === ZERO) c = b[++q]
        else if (c > ZERO && c <= NINE) {
          do {
            m = m * 10 + (c - ZERO)
            c = b[++q]
          } while (c >= ZERO && c <= NINE)
        } else q = -1
        let scale = 0
        if (c === DOT && q >= 0) {
          dotAt = q
          c = b[++q]
          if (c >= ZERO && c <= NINE) {
            // two digits a step: half as long a chain of dependent multiply-adds
            for (;;) {
              const c2 = b[q + 1]
              if (!(c2 >= ZERO && c2 <= NINE)) {
                m = m * 10 + (c - ZERO)
                c = b[++q]
                break
              }
              m = m * 100 + ((c - ZERO) * 10 + (c2 - ZERO))
              q += 2
              c = b[q]
              if (!(c >= ZERO && c <= NINE)) break
            }
            scale = q - dotAt - 1
          } else q = -1
        }
        if (q < 0 || c === LOWER_E || c === UPPER_E) {
          v = this.number(p)
          p = this.pos
        } else if (m >= 9007199254740992) {
          // m is exact below 2^53: every prefix of its digits was smaller still
          this.pos = q
          v = this.longNumber(p, from, dotAt, q, 0, neg)
          p = q
        } else if (scale > 22) {
          v = this.number(p)
          p = this.pos
        } else {
          v = scale === 0 ? m : m / EXACT_POW10[scale]
          if (neg) v = -v
          p = q
        }
      } else if (c === QUOTE) {
        v = this.nonFinite(p)
        if (v === undefined) return -1
        p = this.pos
      } else return -1
      if (k === data.length) data = this.grow(k, k + 1)
      data[k++] = v
      c = b[p]
      while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p]
      if (c === COMMA) {
        c = b[++p]
        while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p]
        continue
      }
      this.count = k
      return c === close ? p : -1
    }
  }

  /**
   * Offers the second half of the body, from a row's '[' (`rows`) or a number after a comma
   * past its middle, to be read ahead while this thread reads up to it (the body is read from
   * p on: that is where the work is). Once a body, and only when what is left of it is large.
   */
  private offer (p: number, rows: boolean): void {
    if (this.offered || this.b.length - p < READ_AHEAD_BYTES) return
    this.offered = true
    const at = splitPointAfter(this.b, p + Math.floor((this.b.length - p) / 2), SPLIT_SEARCH_BYTES, rows)
    if (at >= 0 && (this.aside as ReadAside).start(this.b, at)) this.splitAt = at
  }

  /** Appends `numbers` to the element buffer. */
  private append (numbers: Float64Array): void {
    const k = this.count
    const data = k + numbers.length > this.data.length ? this.grow(k, k + numbers.length) : this.data
    copyBytes(bytesOf(numbers), bytesOf(data), 8 * k)
    this.count = k + numbers.length
  }

  /**
   * A larger element buffer, of at least `needed` elements (at least doubling), holding the
   * first `count` of the old one; kept for later bodies up to KEPT_CAPACITY.
   */
  private grow (count: number, needed: number): Float64Array {
    const grown = new Float64Array(Math.max(2 * this.data.length, needed))
    grown.set(this.data.subarray(0, count))
    this.data = grown
    if (grown.length <= KEPT_CAPACITY) kept = grown
    return grown
  }

  /**
   * Takes in rows read ahead (`run`) as `nested` would have read them, with the same checks of
   * levels, lengths and depth: the numbers are appended, and each row's opening and closing
   * brackets applied to `shape`, `counts` and `level`. Returns the level after them (the reader
   * goes on at run.end), REPLAY_CLOSED when they closed the tensor, REPLAY_FAILED where `nested`
   * would have given up.
   */
  private replay (run: RowRun, shape: number[], counts: number[], level: number, rank: number, depth: number): number {
    if (rank < 0) return REPLAY_FAILED
    this.append(run.numbers)
    const tape = run.tape
    for (let r = 0, i = TAPE_HEADER; r < run.rows; r++, i += TAPE_STRIDE) {
      const opens = tape[i]
      const length = tape[i + 1]
      const closes = tape[i + 2]
      // the arrays opened before the row, and the row's own
      for (let o = 0; o <= opens; o++) {
        level++
        if (level >= rank || depth + level >= MAX_JSON_DEPTH) return REPLAY_FAILED
        counts[level] = 0
        if (shape.length === level) shape.push(-1)
      }
      if (level !== rank - 1) return REPLAY_FAILED
      counts[level] = length
      // the row's own closing bracket, and those after it
      for (let c = 0; c <= closes; c++) {
        const n = counts[level]
        if (shape[level] < 0) shape[level] = n
        else if (shape[level] !== n) return REPLAY_FAILED
        if (level === 0) return r === run.rows - 1 && c === closes && run.ended ? REPLAY_CLOSED : REPLAY_FAILED
        level--
        counts[level]++
      }
    }
    return run.ended ? REPLAY_FAILED : level
  }

  /**
   * Reads rows ahead (another thread's part of `ReadAside`): from a row's '[' at 0, rows of
   * numbers as `nested` reads them, into `out`, with the brackets between them on `tape` (see
   * rows-ahead.ts). Stops before the first row it cannot take whole, with what follows it
   * known: one that is not numbers, runs past the bytes, or past `maxRows` or `out`. Errors in
   * the rows are left for the reader, which reads from where this stopped.
   */
  readRowsAhead (out: Float64Array, tape: Int32Array, maxRows: number): void {
    if (this.b[0] !== LBRACKET) return this.readNumbersAhead(out, tape)
    const b = this.b
    const length = b.length
    this.data = out
    this.count = 0
    let rows = 0
    let numbers = 0
    let resume = 0 // the first '[' after the last row's comma: where the reader goes on
    let ended = false
    let opens = 0
    let p = 0 // the row's own '['
    for (;;) {
      if (rows === maxRows) break
      const q = this.ws(p + 1)
      const c = b[q]
      if (!(c === MINUS || (c >= ZERO && c <= NINE) || c === QUOTE)) break
      let e: number
      try {
        e = this.row(q, RBRACKET)
      } catch {
        break
      }
      if (e < 0 || this.data !== out) break
      let closes = 0
      let after = e + 1
      let s = this.ws(after)
      while (b[s] === RBRACKET) {
        closes++
        after = s + 1
        s = this.ws(after)
      }
      // what follows must be known: a comma and a '[' (the reader goes on there), or anything
      // else, which ends the tensor (the reader checks that these brackets closed it)
      if (s >= length) break
      let next = b[s] === COMMA ? this.ws(s + 1) : -1
      if (next >= length) break
      if (next >= 0 && b[next] !== LBRACKET) next = -1
      const at = TAPE_HEADER + rows * TAPE_STRIDE
      tape[at] = opens
      tape[at + 1] = this.count - numbers
      tape[at + 2] = closes
      rows++
      numbers = this.count
      if (next < 0) {
        ended = true
        resume = after
        break
      }
      resume = next
      opens = 0
      p = next
      for (;;) {
        const n = this.ws(p + 1)
        if (b[n] !== LBRACKET) break
        opens++
        p = n
      }
      this.count = numbers
    }
    tape[1] = rows
    tape[2] = numbers
    tape[3] = resume
    tape[4] = ended ? 1 : 0
  }

  /**
   * Reads numbers ahead in a long flat array, from a number at 0, as `row` reads them, into
   * `out`: up to the closing ']' (the tape says `ended`, and where it is), or up to the last
   * number whose comma is within the bytes and `out` (the reader goes on after that comma).
   */
  private readNumbersAhead (out: Float64Array, tape: Int32Array): void {
    const b = this.b
    const length = b.length
    let k = 0
    let numbers = 0
    let resume = 0
    let ended = false
    let p = 0
    for (;;) {
      let c = b[p]
      let v: number | undefined
      try {
        if (c === MINUS || (c >= ZERO && c <= NINE)) v = this.number(p)
        else if (c === QUOTE) v = this.nonFinite(p)
      } catch {
        break
      }
      if (v === undefined || k === out.length) break
      out[k++] = v
      p = this.ws(this.pos)
      if (p >= length) break
      c = b[p]
      if (c === COMMA) {
        p = this.ws(p + 1)
        if (p >= length) break
        numbers = k
        resume = p
        continue
      }
      if (c === RBRACKET) {
        numbers = k
        resume = p
        ended = true
      }
      break
    }
    tape[1] = 0
    tape[2] = numbers
    tape[3] = resume
    tape[4] = ended ? 1 : 0
  }

  /** The elements read, in an array of exactly their number (a copy: the buffer is read into again). */
  private take (): Float64Array {
    const data = this.data
    this.data = kept
    const memory = this.memory(8 * this.count)
    if (memory === undefined) return data.slice(0, this.count)
    const out = new Float64Array(memory, 0, this.count)
    setElements(out, data.subarray(0, this.count))
    return out
  }

  /** `"NaN"`, `"Infinity"` or `"-Infinity"` at p (no escapes), as a number; undefined otherwise. */
  private nonFinite (p: number): number | undefined {
    const b = this.b
    let q = p + 1
    const neg = b[q] === MINUS
    if (neg) q++
    let v: number
    // 'Infinity' is sliced only when its 8 bytes are there (a slice past the end throws); a body
    // cut short inside the word is a syntax error, found later
    if (!neg && b[q] === 0x4e && b[q + 1] === 0x61 && b[q + 2] === 0x4e) {
      v = NaN
      q += 3
    } else if (b[q] === 0x49 && q + 8 <= b.length && b.latin1Slice(q, q + 8) === 'Infinity') {
      v = neg ? -Infinity : Infinity
      q += 8
    } else return undefined
    if (b[q] !== QUOTE) return undefined
    this.pos = q + 1
    return v
  }

  /**
   * A typed tensor `{"dtype", "shape", "data"}` at p (keys in any order, the tensor at
   * `path`), checked in decodeTensor's order; base64 is decoded by Node's own decoder into the
   * tensor's memory.
   */
  private typed (p: number, depth: number, path: string): DecodedTensor | undefined {
    const b = this.b
    let dtype: unknown
    let shape: unknown
    let flat: Float64Array | undefined
    let text = -1 // start of the base64 text
    let textEnd = -1
    p = this.ws(p + 1)
    for (;;) {
      if (b[p] !== QUOTE) return undefined
      const key = this.string(p)
      p = this.ws(this.pos)
      if (b[p] !== COLON) return undefined
      p = this.ws(p + 1)
      if (key === 'dtype' || key === 'shape') {
        this.pos = p
        const v = this.value(depth + 1, `${path}.${key}`)
        if (key === 'dtype') dtype = v
        else shape = v
        p = this.pos
      } else if (key === 'data' && b[p] === LBRACKET) {
        this.count = 0
        p = this.ws(p + 1)
        if (this.aside !== undefined) this.offer(p, false)
        if (b[p] !== RBRACKET) {
          p = this.row(p, RBRACKET)
          if (p < 0) return undefined
        }
        p++
        flat = this.take()
        text = -1
      } else if (key === 'data' && b[p] === QUOTE) {
        // with dtype and shape read first, the text's length is known: a quote there ends it,
        // with no scan for it (a quote or escape inside is not base64, which the decoding finds)
        const known = p + 1 + base64Chars(dtype, shape)
        const end = known > p && b[known] === QUOTE ? known : b.indexOf(QUOTE, p + 1)
        // an escape makes the text differ from its bytes: the slow path reads it
        if (end < 0 || (end !== known && b.subarray(p + 1, end).indexOf(BACKSLASH) >= 0)) return undefined
        text = p + 1
        textEnd = end
        flat = undefined
        p = end + 1
      } else return undefined
      p = this.ws(p)
      if (b[p] === COMMA) {
        p = this.ws(p + 1)
        continue
      }
      if (b[p] !== RBRACE) return undefined
      p++
      break
    }
    if (dtype !== 'float32' && dtype !== 'float64' && dtype !== 'int32' && dtype !== 'int64') return undefined
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every(d => Number.isInteger(d) && d >= 0 && d <= MAX_DIM)) return undefined
    const dims = shape as number[]
    const n = sizeOf(dims)
    let data: TensorData | undefined
    if (text >= 0) data = this.base64(dtype, n, text, textEnd)
    else if (flat !== undefined) data = flat.length === n ? fromNumbers(dtype, flat, this.memory) : undefined
    if (data === undefined) return undefined
    this.pos = p
    return new DecodedTensor(dtype, dims, data, text >= 0 ? 'base64' : 'flat')
  }

  /** The base64 text in [start, end) as n elements of dtype; undefined unless it is exactly that. */
  private base64 (dtype: WireDType, n: number, start: number, end: number): TensorData | undefined {
    const want = n * ELEMENT_BYTES[dtype]
    if (!base64Fits(want, end - start, this.b[end - 1], this.b[end - 2])) return undefined
    // uninitialised: every byte is written below
    const target = Buffer.from(this.memory(want) ?? Buffer.allocUnsafeSlow(want).buffer, 0, want)
    // Node decodes base64 from a string only: the text is taken a piece at a time, so that each
    // piece is a short-lived young string and not one the size of the tensor, whose collection
    // would cost a full garbage collection. The bytes carry no escape; a byte outside the base64
    // alphabets (a non-ASCII one, a control character), or padding before the end, stops or is
    // skipped by Node's decoder and leaves a piece short of its bytes (base64Fits has checked the
    // padding, which the write's bound would not: it stops at `bytes` whatever comes after).
    let at = 0
    for (let p = start; p < end; p += BASE64_PIECE) {
      const piece = this.b.latin1Slice(p, Math.min(end, p + BASE64_PIECE))
      const bytes = p + BASE64_PIECE < end ? (BASE64_PIECE / 4) * 3 : want - at
      if (target.write(piece, at, bytes, 'base64') !== bytes) return undefined
      at += bytes
    }
    return typedArray(dtype, target.buffer, n)
  }

  // ---- arrays of objects with numbers under `data` -------------------------------------------

  /**
   * The array at p (b[p] is '[', a top-level value) as value(1) reads it, except that in each
   * object element a `data` member of nested numbers is read by `nested` (readJson's
   * dataLists). Leaves pos after it.
   */
  private dataList (p: number, path: string): unknown[] {
    const b = this.b
    const out: unknown[] = []
    p = this.ws(p + 1)
    if (b[p] === RBRACKET) {
      this.pos = p + 1
      return out
    }
    for (;;) {
      if (b[p] === LBRACE) out.push(this.dataObject(p, `${path}[${out.length}]`))
      else {
        this.pos = p
        out.push(this.value(2, `${path}[${out.length}]`))
      }
      p = this.ws(this.pos)
      if (b[p] === COMMA) {
        p = this.ws(p + 1)
        continue
      }
      if (b[p] !== RBRACKET) this.unexpected(p)
      this.pos = p + 1
      return out
    }
  }

  /** An object of a dataList at p (b[p] is '{', at depth 2, at `path`), its `data` read by `nested` where it can be. Leaves pos after it. */
  private dataObject (p: number, path: string): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    this.members(p, path, 3, key => {
      const at = this.pos
      // anything nested() gives up on (a ragged array, a string, a deeper nesting) is read again as plain JSON
      const numbers = key === 'data' && this.b[at] === LBRACKET ? this.nested(at, 3) : undefined
      if (numbers !== undefined) out[key] = numbers
      else {
        this.pos = at
        out[key] = this.value(3, `${path}.${key}`)
      }
    })
    return out
  }

  // ---- plain JSON ---------------------------------------------------------------------------

  /**
   * The JSON value at pos, as JSON.parse builds it, with an explicit stack of open containers
   * (no recursion); `depth` is the nesting depth of the value itself, `path` its place. A
   * reserved key's value is read and dropped, the key's refusal noted.
   */
  value (depth: number, path: string): unknown {
    const b = this.b
    const stack: Array<Record<string, unknown> | unknown[]> = []
    const keys: Array<string | undefined> = [] // undefined: a reserved key, its value dropped
    let p = this.ws(this.pos)
    for (;;) {
      let v: unknown
      let c = b[p]
      if (c === LBRACE || c === LBRACKET) {
        if (depth + stack.length >= MAX_JSON_DEPTH) fail('INVALID_JSON', `body: nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects (a tensor has at most 8 dims)`)
        p = this.ws(p + 1)
        if (c === LBRACKET) {
          if (b[p] !== RBRACKET) {
            stack.push([])
            keys.push('')
            continue
          }
          v = []
        } else {
          if (b[p] !== RBRACE) {
            stack.push({})
            keys.push(this.memberKey(p, path, stack, keys))
            p = this.pos
            continue
          }
          v = {}
        }
        p++
      } else if (c === QUOTE) {
        v = this.string(p)
        p = this.pos
      } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
        v = this.number(p)
        p = this.pos
      } else {
        v = this.literal(p)
        p = this.pos
      }
      // v is complete: hand it to the open containers, closing those that end here
      for (;;) {
        const top = stack.length - 1
        if (top < 0) {
          this.pos = p
          return v
        }
        const container = stack[top]
        p = this.ws(p)
        c = b[p]
        if (Array.isArray(container)) {
          container.push(v)
          if (c === COMMA) {
            p = this.ws(p + 1)
            break
          }
          if (c !== RBRACKET) this.unexpected(p)
        } else {
          const key = keys[top]
          if (key !== undefined) container[key] = v
          if (c === COMMA) {
            keys[top] = this.memberKey(this.ws(p + 1), path, stack, keys)
            p = this.pos
            break
          }
          if (c !== RBRACE) this.unexpected(p)
        }
        p++
        v = stack.pop()
        keys.pop()
      }
    }
  }

  /**
   * The key at p of the innermost object `value` has open (in `stack`, with the `keys` of
   * its ancestors, inside `path`); undefined for a reserved key, its refusal noted.
   */
  private memberKey (p: number, path: string, stack: ReadonlyArray<Record<string, unknown> | unknown[]>, keys: ReadonlyArray<string | undefined>): string | undefined {
    const key = this.key(p)
    if (!RESERVED_KEYS.has(key)) return key
    if (this.refused === undefined) {
      // the place of the key, built only now: an array's element is the one after those it holds
      let at = path
      for (let i = 0; i < stack.length - 1; i++) {
        const c = stack[i]
        at = Array.isArray(c) ? `${at}[${c.length}]` : at === '' ? String(keys[i]) : `${at}.${String(keys[i])}`
      }
      this.refused = reservedKey(at === '' ? key : `${at}.${key}`)
    }
    return undefined
  }

  /** An object key at p with its colon. Leaves pos at the value. */
  private key (p: number): string {
    if (this.b[p] !== QUOTE) this.unexpected(p)
    const key = this.string(p)
    const q = this.ws(this.pos)
    if (this.b[q] !== COLON) this.unexpected(q)
    this.pos = this.ws(q + 1)
    return key
  }

  /** The string at p (b[p] is its opening quote), as JSON.parse reads it. Leaves pos after it. */
  private string (p: number): string {
    const b = this.b
    let q = p + 1
    let c = b[q]
    // printable ASCII without escapes: the common case, its bytes are its characters
    while (c !== QUOTE && c !== BACKSLASH && c >= SPACE && c < 0x80) c = b[++q]
    if (c === QUOTE) {
      this.pos = q + 1
      return b.latin1Slice(p + 1, q)
    }
    let out = ''
    let from = p + 1
    for (;;) {
      c = b[q]
      if (c === QUOTE) {
        this.pos = q + 1
        return out + b.utf8Slice(from, q)
      }
      if (c === undefined) fail('INVALID_JSON', `body: Unterminated string in JSON at position ${q}`)
      if (c < SPACE) fail('INVALID_JSON', `body: Bad control character in string literal at position ${q}`)
      if (c !== BACKSLASH) {
        q++
        continue
      }
      // utf8 segments end at ASCII bytes, so decoding them apart decodes as the whole would
      out += b.utf8Slice(from, q)
      const e = b[q + 1]
      const plain = ESCAPES[e]
      if (plain !== undefined) {
        out += plain
        q += 2
      } else if (e === 0x75) {
        let code = 0
        for (let i = q + 2; i < q + 6; i++) {
          const h = hexValue(b[i])
          if (h < 0) fail('INVALID_JSON', `body: Bad Unicode escape in JSON at position ${i}`)
          code = code * 16 + h
        }
        // surrogates stay code units, paired or not, as JSON.parse leaves them
        out += String.fromCharCode(code)
        q += 6
      } else {
        fail('INVALID_JSON', `body: Bad escaped character in JSON at position ${q + 1}`)
      }
      from = q
    }
  }

  /** true, false or null at p. */
  private literal (p: number): boolean | null {
    const b = this.b
    if (b[p] === 0x74 && b[p + 1] === 0x72 && b[p + 2] === 0x75 && b[p + 3] === 0x65) {
      this.pos = p + 4
      return true
    }
    if (b[p] === 0x66 && b[p + 1] === 0x61 && b[p + 2] === 0x6c && b[p + 3] === 0x73 && b[p + 4] === 0x65) {
      this.pos = p + 5
      return false
    }
    if (b[p] === 0x6e && b[p + 1] === 0x75 && b[p + 2] === 0x6c && b[p + 3] === 0x6c) {
      this.pos = p + 4
      return null
    }
    // the first byte that departs from every literal
    let q = p
    const words = ['true', 'false', 'null']
    const w = words.find(x => x.charCodeAt(0) === b[p])
    if (w !== undefined) while (q - p < w.length && b[q] === w.charCodeAt(q - p)) q++
    return this.unexpected(q)
  }

  /**
   * The number at p in JSON's grammar, bit-identical to JSON.parse: its digits as one integer
   * while that stays below 2^53 (then exact), scaled by an exact power of ten in one rounding
   * (Clinger's fast path) or by decimalToDouble; longer numbers go to `longNumber`.
   */
  private number (p: number): number {
    const b = this.b
    const start = p
    let c = b[p]
    const neg = c === MINUS
    if (neg) c = b[++p]
    const from = p
    let dot = -1
    let m = 0 // every digit read, integer and fraction, as one integer
    let e10 = 0
    if (c === ZERO) c = b[++p]
    else if (c > ZERO && c <= NINE) {
      do {
        m = m * 10 + (c - ZERO)
        c = b[++p]
      } while (c >= ZERO && c <= NINE)
    } else this.unexpected(p)
    if (c === DOT) {
      dot = p
      c = b[++p]
      if (!(c >= ZERO && c <= NINE)) this.unexpected(p)
      // two digits a step: half as long a chain of dependent multiply-adds
      for (;;) {
        const c2 = b[p + 1]
        if (!(c2 >= ZERO && c2 <= NINE)) {
          m = m * 10 + (c - ZERO)
          c = b[++p]
          break
        }
        m = m * 100 + ((c - ZERO) * 10 + (c2 - ZERO))
        p += 2
        c = b[p]
        if (!(c >= ZERO && c <= NINE)) break
      }
      e10 = dot + 1 - p
    }
    const to = p
    let exp = 0
    if (c === LOWER_E || c === UPPER_E) {
      p = this.exponent(p)
      exp = this.exp10
    }
    this.pos = p
    // m is exact when below 2^53: every prefix of its digits was smaller still
    if (m >= 9007199254740992) return this.longNumber(start, from, dot, to, exp, neg)
    e10 += exp
    let v: number
    if (e10 >= 0 && e10 <= 22) v = m * EXACT_POW10[e10]
    else if (e10 < 0 && e10 >= -22) v = m / EXACT_POW10[-e10]
    else if (m === 0) v = 0
    else {
      v = decimalToDouble(m, 0, 0, e10)
      if (v < 0) return Number(b.latin1Slice(start, p))
    }
    return neg ? -v : v
  }

  /** The exponent part at p (b[p] is 'e' or 'E') into exp10; returns the position after it. */
  private exponent (p: number): number {
    const b = this.b
    let c = b[++p]
    const neg = c === MINUS
    if (neg || c === PLUS) c = b[++p]
    if (!(c >= ZERO && c <= NINE)) this.unexpected(p)
    let exp = 0
    do {
      // past any double's range already: stop growing (and stay exact)
      if (exp < 100000) exp = exp * 10 + (c - ZERO)
      c = b[++p]
    } while (c >= ZERO && c <= NINE)
    this.exp10 = neg ? -exp : exp
    return p
  }

  /**
   * A number of 16 digits or more (already checked: digits in [from, to), the dot at `dot`
   * or -1, then exponent `exp`) as up to 19 significant digits, hi (15) and lo (4), for
   * decimalToDouble; V8 reads what that cannot decide.
   */
  private longNumber (start: number, from: number, dot: number, to: number, exp: number, neg: boolean): number {
    const b = this.b
    let i = from
    while (i < to && (b[i] === ZERO || i === dot)) i++ // leading zeros are not significant
    let hi = 0
    let lo = 0
    let loDigits = 0
    for (let kept = 0; i < to && kept < 19; i++) {
      if (i === dot) continue
      if (kept++ < 15) hi = hi * 10 + (b[i] - ZERO)
      else {
        lo = lo * 10 + (b[i] - ZERO)
        loDigits++
      }
    }
    // past 19 digits only zeros keep the decimal exact
    for (let j = i; j < to; j++) if (j !== dot && b[j] !== ZERO) return Number(b.latin1Slice(start, this.pos))
    // the integer digits left scale it up; the fraction digits kept scale it down
    const intEnd = dot >= 0 ? dot : to
    const v = decimalToDouble(hi, loDigits, lo, exp + (i <= intEnd ? intEnd - i : dot + 1 - i))
    if (v < 0) return Number(b.latin1Slice(start, this.pos))
    return neg ? -v : v
  }

  // ---- tokens and errors --------------------------------------------------------------------

  /** The position of the first non-whitespace byte at or after p. */
  private ws (p: number): number {
    const b = this.b
    let c = b[p]
    while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p]
    return p
  }

  /** Requires nothing but whitespace from p on. */
  private end (p: number): void {
    p = this.ws(p)
    if (p < this.b.length) fail('INVALID_JSON', `body: Unexpected non-whitespace character after JSON at position ${p}`)
  }

  private unexpected (p: number): never {
    const c = this.b[p]
    if (c === undefined) return fail('INVALID_JSON', `body: Unexpected end of JSON input at position ${p}`)
    // what Python's json (and JavaScript's String) write for non-finite numbers, which JSON has no literal for
    const word = NON_FINITE_WORDS.find(w => p + w.length <= this.b.length && this.b.latin1Slice(p, p + w.length) === w)
    if (word !== undefined) {
      const at = word !== 'NaN' && this.b[p - 1] === MINUS ? p - 1 : p
      return fail('INVALID_JSON', `body: ${at < p ? '-' : ''}${word} at position ${at} is not JSON; write non-finite numbers as the strings "NaN", "Infinity" and "-Infinity"`)
    }
    if (c > SPACE && c < 0x7f) return fail('INVALID_JSON', `body: Unexpected token ${String.fromCharCode(c)} at position ${p}`)
    return fail('INVALID_JSON', `body: Unexpected byte 0x${c.toString(16).padStart(2, '0')} at position ${p}`)
  }
}

/** Non-finite numbers as some writers put them, bare (`-Infinity` is `-` then `Infinity`). */
const NON_FINITE_WORDS = ['NaN', 'Infinity']

/** What `replay` returns when the tensor is not what `nested` reads, and when the rows closed it. */
const REPLAY_FAILED = -2
const REPLAY_CLOSED = -3

/**
 * Where a body may be split between two readers, at or after `from` (within `limit` bytes),
 * after a comma: the '[' of a row of numbers (`rows`), or a number. -1 when there is none.
 */
function splitPointAfter (b: Buffer, from: number, limit: number, rows: boolean): number {
  const end = Math.min(b.length, from + limit)
  for (let i = b.indexOf(COMMA, from); i >= 0 && i < end; i = b.indexOf(COMMA, i + 1)) {
    let j = i + 1
    while (b[j] === SPACE || b[j] === LF || b[j] === CR || b[j] === TAB) j++
    let k = j
    if (rows) {
      if (b[j] !== LBRACKET) continue
      k = j + 1
      while (b[k] === SPACE || b[k] === LF || b[k] === CR || b[k] === TAB) k++
    }
    const c = b[k]
    if (c === MINUS || (c >= ZERO && c <= NINE) || c === QUOTE) return j
  }
  return -1
}

/** Reads rows ahead from the '[' at the start of `bytes`, or numbers from the number there (see Reader.readRowsAhead). */
export function readRowsAhead (bytes: Buffer, out: Float64Array, tape: Int32Array, maxRows: number): void {
  new Reader(bytes).readRowsAhead(out, tape, maxRows)
}

/** The value of a hexadecimal digit byte, -1 for any other. */
function hexValue (c: number): number {
  if (c >= ZERO && c <= NINE) return c - ZERO
  const lower = c | 0x20
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1
}

/** Characters of base64 text that a tensor of `dtype` and `shape` takes, or -1 unless both are valid. */
function base64Chars (dtype: unknown, shape: unknown): number {
  if ((dtype !== 'float32' && dtype !== 'float64' && dtype !== 'int32' && dtype !== 'int64') || !Array.isArray(shape) || shape.length > MAX_RANK) return -1
  let bytes = ELEMENT_BYTES[dtype]
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > MAX_DIM) return -1
    bytes *= d
  }
  return bytes <= Number.MAX_SAFE_INTEGER ? 4 * Math.ceil(bytes / 3) : -1
}

/** Flat numbers as dtype, as decodeTensor converts them; undefined where it would refuse one. */
function fromNumbers (dtype: WireDType, flat: Float64Array, memory: TensorMemory): TensorData | undefined {
  const n = flat.length
  if (dtype === 'float64') return flat
  if (dtype === 'float32') return converted(Float32Array, flat, memory)
  const out = typedArray(dtype, memory(n * ELEMENT_BYTES[dtype]), n)
  switch (dtype) {
    case 'int32': {
      for (let i = 0; i < n; i++) {
        const v = flat[i]
        if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) return undefined
        out[i] = v
      }
      return out
    }
    case 'int64': {
      // written as two 32-bit words: a BigInt per element costs more than the parsing
      const words = new Int32Array(out.buffer, out.byteOffset, 2 * n)
      for (let i = 0; i < n; i++) {
        const v = flat[i]
        if (!Number.isSafeInteger(v)) return undefined
        const high = Math.floor(v / 4294967296)
        words[2 * i] = v - high * 4294967296
        words[2 * i + 1] = high
      }
      return out
    }
  }
}

/** A typed array of `n` elements of `dtype` at the start of `memory` (absent: memory of its own). */
function typedArray (dtype: WireDType, memory: ArrayBufferLike | undefined, n: number): TensorData {
  switch (dtype) {
    case 'float32': return memory === undefined ? new Float32Array(n) : new Float32Array(memory, 0, n)
    case 'float64': return memory === undefined ? new Float64Array(n) : new Float64Array(memory, 0, n)
    case 'int32': return memory === undefined ? new Int32Array(n) : new Int32Array(memory, 0, n)
    case 'int64': return memory === undefined ? new BigInt64Array(n) : new BigInt64Array(memory, 0, n)
  }
}
