import { copyBytes } from './copy-bytes'
import { readRowsAhead } from './json-reader'

/**
 * Reading a large tensor of JSON numbers on two threads. The body reader (json-reader.ts) offers
 * the second half of a large body, from a row's '[' past its middle (nested arrays) or a number
 * after a comma (a long flat array), to another thread (an idle kernel worker), and reads the
 * first half itself meanwhile. When it reaches that point it takes the other thread's numbers
 * in, and for rows, on a tape, the brackets between them, which it checks as if it had read
 * them. The other thread reads only what it can take whole and says where it stopped; the
 * reader goes on from there. Whatever the other thread does (slow, busy, dead, given a
 * malformed body), the answer is the one reading alone gives: at worst the reader reads the
 * rest itself.
 *
 * The two threads meet in shared memory: the bytes to read (a copy), the numbers, and the tape,
 * whose first word is the job's state, changed only by compare-and-swap and waited on with
 * Atomics.wait (the reader's thread blocks: reading a body is synchronous anyway).
 */

/** What the reader needs from its helper: see the module comment. */
export interface ReadAside {
  /** Has rows (from a '[') or numbers read ahead from `at` in `bytes`; false when no thread can take them. */
  start: (bytes: Buffer, at: number) => boolean
  /** The rows read ahead from `at` (waiting for them), or undefined: the reader reads them itself. */
  rowsAt: (at: number) => RowRun | undefined
  /** The body is read: the job is called off, or waited for, so that its memory can be reused. */
  finish: () => void
}

/** Rows read ahead: their numbers in order, the tape, and where the reader goes on (`end`, or after the tensor when `ended`). */
export interface RowRun { rows: number, numbers: Float64Array, tape: Int32Array, end: number, ended: boolean }

/**
 * The tape: a header (state, rows, numbers, resume position, ended) and per row three words:
 * the arrays opened between the comma before it and its own '[', its length, and the arrays
 * closed after its own ']'.
 */
export const TAPE_HEADER = 8
export const TAPE_STRIDE = 3

/** A job as posted to the other thread: everything is in shared memory. */
export interface RowsJob { id: number, length: number, bytes: SharedArrayBuffer, out: SharedArrayBuffer, tape: SharedArrayBuffer, maxRows: number }

// the state word: job id × 4 + one of these (a later job's id never matches an earlier's)
const PENDING = 0
const RUNNING = 1
const DONE = 2
/** Called off before the thread began, or failed: the reader reads those rows itself. */
const OFF = 3
/** Most bytes of a body read ahead; past them the reader reads the rest itself. */
export const MOST_AHEAD_BYTES = 8 * 2 ** 20
/** Most rows on a tape. */
export const MOST_AHEAD_ROWS = 1 << 16

/**
 * The reader's side: one job at a time (bodies are read one after the other, synchronously),
 * in shared memory kept from one body to the next.
 */
export class RowsAside implements ReadAside {
  /**
   * Bodies split so far, by outcome: `readAhead` (the other thread's rows were taken in),
   * `readHere` (the reader read them after all: the thread had not begun, failed, or was given
   * up on, or the reader never reached them), `declined` (no thread could take them).
   */
  readonly outcomes = { readAhead: 0, readHere: 0, declined: 0 }
  private memory?: { bytes: SharedArrayBuffer, out: SharedArrayBuffer, tape: SharedArrayBuffer }
  private job?: { id: number, at: number, startedMs: number }
  private ids = 0

  /**
   * @param post sends a job to a thread that runs `runRowsJob` on it; false when none can take it now
   * @param available whether `post` could send one now (asked before the bytes are copied)
   * @param now the clock the wait for a job is bounded by (tests)
   */
  constructor (
    private readonly post: (job: RowsJob) => boolean,
    private readonly available: () => boolean = () => true,
    private readonly now: () => number = () => performance.now()
  ) {}

  start (bytes: Buffer, at: number): boolean {
    if (this.job !== undefined) return false
    if (!this.available()) {
      this.outcomes.declined++
      return false
    }
    const length = Math.min(bytes.length - at, MOST_AHEAD_BYTES)
    const memory = this.memoryFor(length)
    copyBytes(bytes.subarray(at, at + length), Buffer.from(memory.bytes, 0, length), 0)
    // ids wrap where id × 4 + state would leave an Int32 (a reused id is half a billion jobs old)
    const id = this.ids = this.ids % 0x1fffffff + 1
    Atomics.store(new Int32Array(memory.tape, 0, 1), 0, id * 4 + PENDING)
    if (!this.post({ id, length, bytes: memory.bytes, out: memory.out, tape: memory.tape, maxRows: MOST_AHEAD_ROWS })) {
      this.outcomes.declined++
      return false
    }
    this.job = { id, at, startedMs: this.now() }
    return true
  }

  rowsAt (at: number): RowRun | undefined {
    if (this.job === undefined || this.job.at !== at) return undefined
    const memory = this.settle()
    if (memory === undefined) {
      this.outcomes.readHere++
      return undefined
    }
    this.outcomes.readAhead++
    const tape = new Int32Array(memory.tape)
    return { rows: tape[1], numbers: new Float64Array(memory.out, 0, tape[2]), tape, end: at + tape[3], ended: tape[4] === 1 }
  }

  finish (): void {
    if (this.job === undefined) return
    this.settle()
    this.outcomes.readHere++
  }

  /**
   * Settles the job: it is called off if the thread has not begun (busy with a kernel), else
   * waited for, up to twice as long as the reader has spent on its own half (and at least
   * 20 ms). A job still running then is given up, and its memory with it: the thread may still
   * write there. Returns the job's memory when its rows are ready; the job is over either way.
   */
  private settle (): RowsAside['memory'] {
    const job = this.job as NonNullable<RowsAside['job']>
    const memory = this.memory as NonNullable<RowsAside['memory']>
    this.job = undefined
    const state = new Int32Array(memory.tape, 0, 1)
    const base = job.id * 4
    if (Atomics.compareExchange(state, 0, base + PENDING, base + OFF) === base + PENDING) return undefined
    const deadline = this.now() + Math.max(20, 2 * (this.now() - job.startedMs))
    for (;;) {
      const word = Atomics.load(state, 0)
      if (word !== base + RUNNING) return word === base + DONE ? memory : undefined
      const left = deadline - this.now()
      if (left <= 0) {
        this.memory = undefined
        return undefined
      }
      Atomics.wait(state, 0, base + RUNNING, left)
    }
  }

  /** Shared memory for a job of `length` bytes: room for a number per two bytes (a digit and a comma), and a tape of MOST_AHEAD_ROWS rows. */
  private memoryFor (length: number): NonNullable<RowsAside['memory']> {
    const numbers = Math.floor(length / 2) + 1
    const m = this.memory
    if (m !== undefined && m.bytes.byteLength >= length && m.out.byteLength >= 8 * numbers) return m
    this.memory = {
      bytes: new SharedArrayBuffer(Math.max(length, m?.bytes.byteLength ?? 0)),
      out: new SharedArrayBuffer(8 * Math.max(numbers, (m?.out.byteLength ?? 0) / 8)),
      tape: new SharedArrayBuffer(4 * (TAPE_HEADER + TAPE_STRIDE * MOST_AHEAD_ROWS))
    }
    return this.memory
  }
}

/** The other thread's side: reads the job's rows unless the reader has called it off. */
export function runRowsJob (job: RowsJob): void {
  const state = new Int32Array(job.tape, 0, 1)
  const base = job.id * 4
  if (Atomics.compareExchange(state, 0, base + PENDING, base + RUNNING) !== base + PENDING) return
  let outcome = OFF
  try {
    readRowsAhead(Buffer.from(job.bytes, 0, job.length), new Float64Array(job.out), new Int32Array(job.tape), job.maxRows)
    outcome = DONE
  } catch {
    // nothing read ahead: the reader reads these rows itself
  } finally {
    Atomics.store(state, 0, base + outcome)
    Atomics.notify(state, 0)
  }
}
