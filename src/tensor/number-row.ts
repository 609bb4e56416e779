import { copyBytes } from './copy-bytes'
import { EXACT_POW10 } from './json-decimal'
import { NUMBER_ROW_WASM } from './number-row-wasm'

/**
 * The body reader's rows of numbers read in WebAssembly (number-row.wat): the same fast path as
 * `row` in json-reader.ts, number for number (digits as one integer below 2^53 over an exact
 * power of ten, so bit for bit what JSON.parse gives), for the bodies where numbers are most of
 * the work: a [256,1000] body of 4-decimal numbers is read in 2.7 to 2.8 ms instead of 5.2 (best
 * of 40 reads; bench/README.md has the service's figures). It reads from a
 * window of the body copied into its memory (1 MiB: the memory stays small whatever the body)
 * and stops at any element it does not read (exponents, long digits, "NaN", a syntax error),
 * which the reader reads itself before handing the row back.
 */

/** Bytes of the body in the window. */
const WINDOW = 1 << 20
/** Numbers read per call, at most. */
const MOST_NUMBERS = 1 << 16
/** Where the window starts in the module's memory: after the powers of ten (EXACT_POW10, 23 float64). */
const WINDOW_AT = 256
/** Where the numbers go: after the window and its end byte (0), 8-byte aligned. */
const NUMBERS_AT = WINDOW_AT + WINDOW + 8
const PAGE = 65536
/** A window is refilled from an element closer than this to its end (unless it holds the body's end). */
const SPARE = 4096

// why a call returned (the module's `why`)
const STOPPED = 0
const CUT = 2
const AFTER = 3

/** The module's exports (number-row.wat). */
interface Exports {
  memory: { buffer: ArrayBuffer, grow: (pages: number) => number }
  count: { value: number }
  why: { value: number }
  row: (p: number, stop: number, out: number, max: number) => number
}

/** What is used of the WebAssembly API (the project's lib, ES2022, has no types for it). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: unknown }
}

export class NumberRows {
  /** Set by `read`: whether it stopped after an element (at the token after it) rather than at one. */
  after = false
  private readonly bytes: Uint8Array
  private readonly numbers: Float64Array
  /** The reader whose body the window holds, and the body positions it spans. */
  private owner: object | undefined
  private from = 0
  private to = 0

  constructor (private readonly wasm: Exports) {
    const pages = Math.ceil((NUMBERS_AT + 8 * MOST_NUMBERS) / PAGE) - wasm.memory.buffer.byteLength / PAGE
    if (pages > 0) wasm.memory.grow(pages)
    this.bytes = new Uint8Array(wasm.memory.buffer)
    this.numbers = new Float64Array(wasm.memory.buffer, NUMBERS_AT, MOST_NUMBERS)
    // the module divides by the reader's own powers of ten
    new Float64Array(wasm.memory.buffer, 0, EXACT_POW10.length).set(EXACT_POW10)
  }

  /**
   * Reads elements of `body` from `p` (an element's start) up to the first it leaves to the
   * caller, or the first at or past `stop`; gives the numbers to `take` as they come. Returns
   * where it stopped: at an element (`after` false), or after one, whitespace skipped, at a
   * token that is not a comma (`after` true). `owner` is the reader: a window is never reused
   * for another body.
   */
  read (owner: object, body: Uint8Array, p: number, stop: number, take: (numbers: Float64Array) => void): number {
    const wasm = this.wasm
    for (;;) {
      // a window from p, unless the one held covers it with more than an element to spare
      if (owner !== this.owner || p < this.from || (this.to < body.length && this.to - p < SPARE)) this.fill(owner, body, p)
      const at = wasm.row(WINDOW_AT + p - this.from, WINDOW_AT + Math.min(stop, this.to) - this.from, NUMBERS_AT, MOST_NUMBERS)
      const n = wasm.count.value
      if (n > 0) take(this.numbers.subarray(0, n))
      const why = wasm.why.value
      const q = this.from + at - WINDOW_AT
      this.after = why === AFTER
      if (this.after) return q
      // read on: past an element the window's end cut (unless the window began with it), or
      // past the window's end or the numbers' room
      const more = why === CUT ? q > this.from && this.to < body.length : why === STOPPED && q < stop && q < body.length
      if (!more) return q
      if (why === CUT) this.owner = undefined
      p = q
    }
  }

  private fill (owner: object, body: Uint8Array, p: number): void {
    const to = Math.min(body.length, p + WINDOW)
    copyBytes(body.subarray(p, to), this.bytes, WINDOW_AT)
    this.bytes[WINDOW_AT + to - p] = 0
    this.owner = owner
    this.from = p
    this.to = to
  }
}

let rows: NumberRows | null | undefined

/** This thread's reader of rows, or undefined where WebAssembly is not to be had. */
export function numberRows (): NumberRows | undefined {
  if (rows === undefined) {
    const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly
    try {
      if (api === undefined) throw new Error('no WebAssembly')
      rows = new NumberRows(new api.Instance(new api.Module(Buffer.from(NUMBER_ROW_WASM, 'base64')), {}).exports as Exports)
    } catch {
      // the reader's own loop reads every number instead
      rows = null
    }
  }
  return rows ?? undefined
}
