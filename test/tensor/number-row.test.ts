/**
 * Rows of numbers read in WebAssembly (src/tensor/number-row.ts) give what JSON.parse gives, bit
 * for bit, and leave every element they do not read to the reader's own loop; and the module
 * the service loads is the one its text compiles to.
 */
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { readBody, DecodedTensor, NUMBER_ROWS_BYTES } from '../../src/tensor/json-reader'
import { decodeTensor } from '../../src/tensor/decode'
import { LosshubError } from '../../src/errors'
import { NumberRows, numberRows } from '../../src/tensor/number-row'
import { NUMBER_ROW_WASM } from '../../src/tensor/number-row-wasm'
import { compileNumberRow } from '../../scripts/wasm'
import { numberTexts } from './json-forms'

const SEED = Number(process.env.JSON_SEED ?? 20250)
const RUNS = Number(process.env.JSON_RUNS ?? 300)
const KEYS = new Set(['input'])

t.test('the module loaded is the one number-row.wat compiles to (npm run wasm writes it)', async t => {
  t.equal(NUMBER_ROW_WASM, (await compileNumberRow()).toString('base64'))
})

const rows = numberRows() as NumberRows
t.ok(rows instanceof NumberRows, 'WebAssembly is there to be had')

/** What `read` makes of a text from 0: its numbers, where it stopped, and whether after an element. */
function readAll (text: string, stop = text.length): { numbers: number[], at: number, after: boolean } {
  const numbers: number[] = []
  const at = rows.read({}, Buffer.from(text), 0, stop, n => numbers.push(...n))
  return { numbers, at, after: rows.after }
}

t.test('it reads numbers, commas and whitespace, and stops after the row or at an element it leaves to the reader', async t => {
  t.same(readAll('1,-2.5, 0.125 ,\n7 ]'), { numbers: [1, -2.5, 0.125, 7], at: 18, after: true }, 'up to the bracket, whitespace skipped')
  t.same(readAll('0.1,0.2x'), { numbers: [0.1, 0.2], at: 7, after: true }, 'a stray token after a number is the reader\'s to refuse')
  t.same(readAll('1,2e3,4]'), { numbers: [1], at: 2, after: false }, 'an exponent')
  t.same(readAll('1, "NaN",4]'), { numbers: [1], at: 3, after: false }, 'a non-finite string')
  t.same(readAll('1,12345678901234567890,4]'), { numbers: [1], at: 2, after: false }, 'more than 18 digits')
  t.same(readAll('1,9007199254740993,4]'), { numbers: [1], at: 2, after: false }, 'digits past 2^53')
  t.same(readAll('1,-,4]'), { numbers: [1], at: 2, after: false }, 'a sign alone')
  t.same(readAll('1,5.,4]'), { numbers: [1], at: 2, after: false }, 'a dot without digits')
  t.same(readAll('1,.5,4]'), { numbers: [1], at: 2, after: false }, 'a dot first')
  t.same(readAll('-0,0.0,4]'), { numbers: [-0, 0, 4], at: 8, after: true }, 'negative zero')
  t.ok(Object.is(readAll('-0]').numbers[0], -0), '-0 is negative zero')
  t.same(readAll('1,2,3,4]', 4), { numbers: [1, 2], at: 4, after: false }, 'it stops at the element at `stop`')
  t.same(readAll('1,2,3'), { numbers: [1, 2], at: 4, after: false }, 'an element running into the end of the bytes is the reader\'s')
})

/** readBody's tensor for `input`, or its error code. */
function read (text: string): { data?: ArrayBufferView, shape?: number[], code?: string } {
  try {
    const t = readBody(Buffer.from(text), KEYS).input as DecodedTensor
    return { data: t.data, shape: t.shape }
  } catch (err) {
    if (!(err instanceof LosshubError)) throw err
    return { code: err.code }
  }
}

/** decodeTensor's tensor from JSON.parse, or the error code either gives. */
function reference (text: string): { data?: ArrayBufferView, shape?: number[], code?: string } {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { code: 'INVALID_JSON' }
  }
  try {
    const t = decodeTensor('input', (json as { input: unknown }).input)
    return { data: t.data, shape: t.shape }
  } catch (err) {
    if (!(err instanceof LosshubError)) throw err
    return { code: err.code }
  }
}

const bytes = (a: ArrayBufferView | undefined): string => a === undefined ? '-' : Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex')

/** Where readBody and JSON.parse + decodeTensor part on a text, if they do. */
function difference (text: string): string | undefined {
  const got = read(text)
  const want = reference(text)
  if (got.code !== want.code || bytes(got.data) !== bytes(want.data) || JSON.stringify(got.shape) !== JSON.stringify(want.shape)) {
    return `${JSON.stringify(got.code ?? got.shape)} vs ${JSON.stringify(want.code ?? want.shape)}`
  }
  return undefined
}

function same (t: Test, text: string, what: string): void {
  t.equal(difference(text), undefined, what)
}

/** A padded body: large enough for the WebAssembly reader, its numbers after the padding. */
const padded = (input: string): string => `{"pad":"${'x'.repeat(NUMBER_ROWS_BYTES)}","input":${input}}`

/** An element as tensors are written, and the ones the reader reads itself, and a few mistakes. */
const elementText = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom('', '-'), fc.stringMatching(/^(0|[1-9][0-9]{0,9})$/), fc.stringMatching(/^[0-9]{0,12}$/)).map(([s, i, f]) => f === '' ? `${s}${i}` : `${s}${i}.${f}`) },
  { weight: 2, arbitrary: fc.tuple(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.nat()).map(([v, i]) => numberTexts(v)[i % numberTexts(v).length]) },
  { weight: 1, arbitrary: fc.stringMatching(/^-?[1-9][0-9]{15,25}(\.[0-9]{1,8})?$/) },
  { weight: 1, arbitrary: fc.constantFrom('"NaN"', '"Infinity"', '"-Infinity"') },
  { weight: 1, arbitrary: fc.constantFrom('01', '1.', '.5', '-', '+1', '1e', '0x1', 'true', '"1"', '1.5.5', '--1', '[1]', '') }
)
const gap = fc.constantFrom('', '', '', ' ', '\n', '\t', ' \r\n ')

t.test('a row of any elements: bit for bit what JSON.parse gives, or its error', async t => {
  fc.assert(fc.property(fc.array(fc.tuple(gap, elementText, gap), { minLength: 1, maxLength: 40 }), fc.boolean(), (elements, nested) => {
    const row = `[${elements.map(([a, e, b]) => `${a}${e}${b}`).join(',')}]`
    const differs = difference(padded(nested ? `[${row},${row}]` : row))
    if (differs !== undefined) throw new Error(`${row}: ${differs}`)
  }), { seed: SEED, numRuns: 5 * RUNS })
  t.pass(`${5 * RUNS} rows`)
})

t.test('rows across windows of the body: every element where a window ends, whatever it is', async t => {
  // numbers of every length, some the reader reads itself, over 2.5 MiB of body: windows of 1 MiB
  // end inside every kind of element as the offset shifts the text
  const pieces = ['0.5', '-12.25', '7', '123456.789', '"NaN"', '1e-3', '-0', '98765432109876543210', '3.14159', ' 2 ', '\n-4.5']
  const values: string[] = []
  for (let i = 0, length = 0; length < 2.5 * 2 ** 20; i++) {
    values.push(pieces[i % pieces.length])
    length += pieces[i % pieces.length].length + 1
  }
  const row = values.join(',')
  for (let shift = 0; shift < 24; shift++) {
    same(t, `{"pad":"${'x'.repeat(shift)}","input":[${row}]}`, `shift ${shift}`)
  }
  // and a long element at every position across the first window's end
  const head = '{"input":['
  for (let at = 2 ** 20 - 40; at < 2 ** 20 + 8; at += 3) {
    const filler = '1,'.repeat(Math.floor((at - head.length) / 2))
    same(t, `${head}${filler}${'9'.repeat(30)}.5e-7,0.25,1]}`, `a long element at ${at}`)
  }
})
