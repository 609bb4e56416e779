import t from 'tap'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { LosshubError } from '../../src/errors'
import { READ_AHEAD_BYTES, readBody, readJson, readRowsAhead } from '../../src/tensor/json-reader'
import { type ReadAside, type RowRun, type RowsJob, RowsAside, runRowsJob, TAPE_HEADER } from '../../src/tensor/rows-ahead'

const KEYS = new Set(['input', 'target'])

/** What readBody gives for `text` (each tensor's shape and elements, as strings so that NaN and -0 compare), or its error. */
function outcome (text: string, aside?: ReadAside): string {
  try {
    const body = readBody(Buffer.from(text), KEYS, undefined, undefined, aside)
    return JSON.stringify(body, (_, v) => ArrayBuffer.isView(v) ? Array.from(v as Float64Array, x => Object.is(x, -0) ? '-0' : String(x)) : v)
  } catch (err) {
    if (!(err instanceof LosshubError)) throw err
    return `${err.code}: ${err.message}`
  }
}

/** An aside that runs each job at once on this thread, and counts the runs the reader took in. */
function inline (): { aside: ReadAside, taken: RowRun[], started: number } {
  const rows = new RowsAside(job => { runRowsJob(job); return true })
  const h = {
    taken: [] as RowRun[],
    started: 0,
    aside: {
      start: (b: Buffer, at: number) => { const ok = rows.start(b, at); if (ok) h.started++; return ok },
      rowsAt: (at: number) => { const run = rows.rowsAt(at); if (run !== undefined) h.taken.push(run); return run },
      finish: () => rows.finish()
    }
  }
  return h
}

let seed = 11
const random = (): number => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed / 2 ** 32 }
const nested = (shape: number[]): unknown => shape.length === 0
  ? (random() < 0.01 ? 'NaN' : Math.round((random() * 4 - 2) * 1e4) / 1e4)
  : Array.from({ length: shape[0] }, () => nested(shape.slice(1)))

/** A tensor of `shape` in the nested form, or (`flat`) the typed flat form. */
const tensor = (shape: number[], flat: boolean): unknown => flat ? { dtype: 'float32', shape, data: (nested(shape) as unknown[]).flat(shape.length) } : nested(shape)

/** A body of one or two tensors (nested, or typed flat) of a random shape, large enough to be split. */
function largeBody (): string {
  const rank = 1 + Math.floor(random() * 4)
  const shape = Array.from({ length: rank }, (_, d) => d === rank - 1 ? 1 + Math.floor(random() * 300) : 1 + Math.floor(random() * 6))
  while (shape.reduce((a, b) => a * b, 1) * 8 < READ_AHEAD_BYTES) shape[0] *= 2
  const body: Record<string, unknown> = { input: tensor(shape, random() < 0.4), reduction: 'sum' }
  if (random() < 0.3) body.target = tensor(shape, random() < 0.4)
  return JSON.stringify(body, null, random() < 0.2 ? 1 : undefined)
}

/** `text` with one mistake, mostly near its middle (where it is split): a byte dropped, a row or bracket or number part added. */
function malformed (text: string): string {
  const at = Math.floor(text.length * (random() < 0.6 ? 0.45 + random() * 0.1 : 0.3 + random() * 0.7))
  const kind = Math.floor(random() * 5)
  if (kind === 0) return text.slice(0, at) + text.slice(at + 1)
  if (kind === 1) return text.slice(0, at) + '],[' + text.slice(at)
  if (kind === 2) return text.slice(0, at) + ']' + text.slice(at)
  if (kind === 3) return text.slice(0, at) + '1.e' + text.slice(at)
  const comma = text.indexOf(',', at)
  return comma < 0 ? text : text.slice(0, comma) + ',1' + text.slice(comma)
}

t.test('rows read ahead: numbers in order, and on the tape the brackets between rows and where to go on', async t => {
  const text = '[1, 2],[3,4]] , [ [5,-6.5],["NaN",8]]],"target":1'
  const out = new Float64Array(16)
  const tape = new Int32Array(TAPE_HEADER + 3 * 8)
  readRowsAhead(Buffer.from(text), out, tape, 8)
  t.same(Array.from(tape.subarray(1, 5)), [4, 8, text.indexOf(']],"target"') + 2, 1], 'four rows, eight numbers, the end after the last bracket')
  t.same(Array.from(tape.subarray(TAPE_HEADER, TAPE_HEADER + 12)), [0, 2, 0, 0, 2, 1, 1, 2, 0, 0, 2, 2], 'per row: arrays opened before it, its length, arrays closed after it')
  t.same(Array.from(out.subarray(0, 8)), [1, 2, 3, 4, 5, -6.5, NaN, 8])
})

t.test('rows read ahead stop before a row they cannot take whole, where the reader goes on', async t => {
  const tape = new Int32Array(TAPE_HEADER + 3 * 8)
  const stops: Array<[string, number]> = [
    ['[1,2],[3,x],[5,6]]', 6], // a row that is not numbers: the reader meets it itself
    ['[1,2],[[3,4]]]', 6], // a row that opens deeper
    ['[1,2],[3,4],[5,', 12], // bytes that end inside a row
    ['[1,2],[3,4]]', 6] // bytes that end before what follows a row is known
  ]
  for (const [text, resume] of stops) {
    readRowsAhead(Buffer.from(text), new Float64Array(16), tape, 8)
    t.equal(tape[3], resume, `${text}: goes on at ${resume}`)
    t.equal(text[tape[3]], '[', 'at a row\'s bracket')
    t.equal(tape[4], 0, 'not the end of the tensor')
  }
  readRowsAhead(Buffer.from('[1],[2],[3],[4]]'), new Float64Array(16), tape, 2)
  t.same(Array.from(tape.subarray(1, 4)), [2, 2, 8], 'at most maxRows rows')
})

t.test('numbers read ahead in a long flat array: up to its bracket, or to the last number whose comma is within the bytes', async t => {
  const tape = new Int32Array(TAPE_HEADER)
  const out = new Float64Array(8)
  const text = '1.5, -2 ,"NaN",4e2 ] ,"shape"'
  readRowsAhead(Buffer.from(text), out, tape, 8)
  t.same(Array.from(tape.subarray(1, 5)), [0, 4, text.indexOf(']'), 1], 'four numbers, ended at the bracket')
  t.same(Array.from(out.subarray(0, 4)), [1.5, -2, NaN, 400])
  readRowsAhead(Buffer.from('1,2,3.2'), out, tape, 8)
  t.same(Array.from(tape.subarray(1, 5)), [0, 2, 4, 0], 'the last number may be cut short: the reader goes on at it')
  readRowsAhead(Buffer.from('1,2,x,4]'), out, tape, 8)
  t.same(Array.from(tape.subarray(1, 5)), [0, 2, 4, 0], 'not a number: the reader meets it itself')
  readRowsAhead(Buffer.from('1,2,3,4,5]'), new Float64Array(3), tape, 8)
  t.same(Array.from(tape.subarray(1, 5)), [0, 3, 6, 0], 'no more than `out` holds')
})

t.test('a body read with rows ahead is the body read alone, valid or not, whatever its shape, form and spacing', async t => {
  const h = inline()
  let differ = 0
  const runs = 400
  for (let i = 0; i < runs; i++) {
    const valid = largeBody()
    const text = i % 3 === 0 ? malformed(valid) : valid
    if (outcome(text, h.aside) !== outcome(text)) differ++
  }
  t.equal(differ, 0, 'the same value or the same error')
  t.ok(h.started > runs / 2, `most bodies were split (${h.started} of ${runs})`)
  t.ok(h.taken.filter(r => r.numbers.length > 0).length > runs / 3, 'and most of those took numbers in')
  t.ok(h.taken.some(r => r.rows > 0 && r.ended), 'some runs read rows to the end of a nested tensor')
  t.ok(h.taken.some(r => r.rows === 0 && r.ended && r.numbers.length > 0), 'some read numbers to the end of a flat one')
})

t.test('an inference request\'s data (readJson with dataLists) read with rows or numbers ahead is the request read alone', async t => {
  const h = inline()
  const lists = new Set(['inputs'])
  const read = (text: string, aside?: ReadAside): string => {
    try {
      return JSON.stringify(readJson(Buffer.from(text), lists, undefined, aside), (_, v) => ArrayBuffer.isView(v) ? Array.from(v as Float64Array, x => Object.is(x, -0) ? '-0' : String(x)) : v)
    } catch (err) {
      if (!(err instanceof LosshubError)) throw err
      return `${err.code}: ${err.message}`
    }
  }
  let differ = 0
  const runs = 150
  for (let i = 0; i < runs; i++) {
    const { input } = JSON.parse(largeBody()) as { input: unknown }
    // the protocol's flat data, or nested data as some clients send it
    const data = typeof input === 'object' && input !== null && !Array.isArray(input) ? (input as { data: unknown }).data : input
    const valid = JSON.stringify({ id: String(i), inputs: [{ name: 'input', datatype: 'FP32', shape: [1], data }, { name: 'target', datatype: 'INT64', shape: [1], data: [0] }] })
    const text = i % 3 === 0 ? malformed(valid) : valid
    if (read(text, h.aside) !== read(text)) differ++
  }
  t.equal(differ, 0, 'the same value or the same error')
  t.ok(h.taken.some(r => r.rows > 0 && r.ended), 'some runs read rows to the end of nested data')
  t.ok(h.taken.some(r => r.rows === 0 && r.ended && r.numbers.length > 0), 'some read numbers to the end of flat data')
})

t.test('a small body is not split; a large one is split at a row past its middle', async t => {
  const starts: number[] = []
  const aside: ReadAside = { start: (_b, at) => { starts.push(at); return false }, rowsAt: () => undefined, finish: () => {} }
  outcome(JSON.stringify({ input: nested([4, 4]) }), aside)
  t.same(starts, [], 'a small body')
  const text = JSON.stringify({ input: nested([2000, 64]) })
  t.equal(outcome(text, aside), outcome(text), 'offered and declined: read alone')
  t.equal(starts.length, 1)
  t.ok(starts[0] > text.length / 2 && text.slice(starts[0] - 1, starts[0] + 1) === ',[', 'at a row past the middle')
  const declining = new RowsAside(() => false)
  t.equal(outcome(text, declining), outcome(text), 'no thread to take the rows: read alone')
  t.same(declining.outcomes, { readAhead: 0, readHere: 0, declined: 1 })
  let posted = 0
  const busy = new RowsAside(() => { posted++; return true }, () => false)
  t.equal(outcome(text, busy), outcome(text), 'no thread free, said before anything is copied or posted')
  t.same([posted, busy.outcomes.declined], [0, 1])
})

t.test('a job the thread has not begun is called off, and the thread then leaves it', async t => {
  const jobs: RowsJob[] = []
  const rows = new RowsAside(job => { jobs.push(job); return true })
  const text = JSON.stringify({ input: nested([2000, 64]) })
  t.equal(outcome(text, rows), outcome(text), 'the reader read every row itself')
  t.equal(jobs.length, 1)
  const tape = new Int32Array(jobs[0].tape)
  tape[1] = -1
  runRowsJob(jobs[0])
  t.equal(tape[1], -1, 'the late thread wrote nothing')
  t.same(rows.outcomes, { readAhead: 0, readHere: 1, declined: 0 })
})

t.test('a job still running past its wait is given up, with its memory; the next body gets memory of its own', async t => {
  const jobs: RowsJob[] = []
  // the thread says it began, and never ends
  const rows = new RowsAside(job => { jobs.push(job); Atomics.store(new Int32Array(job.tape, 0, 1), 0, job.id * 4 + 1); return true })
  const text = JSON.stringify({ input: nested([2000, 64]) })
  const began = performance.now()
  t.equal(outcome(text, rows), outcome(text), 'the reader read the rows itself')
  t.ok(performance.now() - began >= 19, 'after waiting at least 20 ms for them')
  outcome(text, rows)
  t.equal(jobs.length, 2)
  t.not(jobs[1].out, jobs[0].out, 'the second job writes elsewhere')
  t.not(jobs[1].tape, jobs[0].tape)
})

t.test('a job that fails on its thread leaves the rows to the reader', async t => {
  const rows = new RowsAside(job => {
    const state = new Int32Array(job.tape, 0, 1)
    Atomics.store(state, 0, job.id * 4 + 3)
    return true
  })
  const text = JSON.stringify({ input: nested([2000, 64]) })
  t.equal(outcome(text, rows), outcome(text))
})

t.test('on a real thread: the rows are read there, and the body is the body read alone', async t => {
  const boot = `require('ts-node').register({ transpileOnly: true })
const { parentPort } = require('node:worker_threads')
const { runRowsJob } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'tensor', 'rows-ahead.ts'))})
parentPort.on('message', job => runRowsJob(job))
parentPort.postMessage('ready')`
  const worker = new Worker(boot, { eval: true, execArgv: [] })
  t.teardown(async () => { await worker.terminate() })
  await new Promise(resolve => worker.once('message', resolve))
  const rows = new RowsAside(job => { worker.postMessage(job); return true })
  const taken: RowRun[] = []
  const aside: ReadAside = {
    start: (b, at) => rows.start(b, at),
    rowsAt: at => { const r = rows.rowsAt(at); if (r !== undefined) taken.push(r); return r },
    finish: () => rows.finish()
  }
  for (let i = 0; i < 20; i++) {
    const text = largeBody()
    t.equal(outcome(text, aside), outcome(text), `body ${i}`)
  }
  t.ok(taken.some(r => r.rows > 0), `the thread's rows were taken in (${taken.length} runs)`)
})
