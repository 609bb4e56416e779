import t from 'tap'
import fc from 'fast-check'
import { TensorOut, writeJson } from '../../src/tensor/json-writer'
import { encodeTensor } from '../../src/tensor/encode'
import { decodeTensor } from '../../src/tensor/decode'
import { DecodedTensor, readBody } from '../../src/tensor/json-reader'
import { type TensorData, type TensorForm, type WireDType } from '../../src/tensor/tensor'
import { difference, random } from './json-forms'

const SEED = Number(process.env.JSON_SEED ?? 20250)
const RUNS = Number(process.env.JSON_RUNS ?? 300)
t.comment(`fast-check seed ${SEED} (JSON_SEED, JSON_RUNS to replay or extend)`)

/** What JSON.stringify writes for the same result built with encodeTensor. */
function reference (value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => v instanceof TensorOut ? encodeTensor(v.dtype, v.shape, v.data, v.form) : v)
}

const DTYPES: readonly WireDType[] = ['float32', 'float64', 'int32', 'int64']
const FORMS: readonly TensorForm[] = ['nested', 'flat', 'base64']

/** Random data of a dtype: every float32 and double (NaN, ±Infinity, -0, subnormals), every int32 and int64. */
function dataOf (dtype: WireDType, n: number): fc.Arbitrary<TensorData> {
  switch (dtype) {
    case 'float32': return fc.array(fc.float(), { minLength: n, maxLength: n }).map(xs => Float32Array.from(xs))
    case 'float64': return fc.array(fc.double(), { minLength: n, maxLength: n }).map(xs => Float64Array.from(xs))
    case 'int32': return fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: n, maxLength: n }).map(xs => Int32Array.from(xs))
    case 'int64': return fc.array(fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: -(2n ** 53n), max: 2n ** 53n })), { minLength: n, maxLength: n }).map(xs => BigInt64Array.from(xs))
  }
}

const tensorOut = fc.tuple(fc.constantFrom(...DTYPES), fc.constantFrom(...FORMS), fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }))
  .chain(([dtype, form, shape]) => dataOf(dtype, shape.reduce((a, b) => a * b, 1)).map(data => new TensorOut(dtype, shape, data, form)))

/** Whether JSON numbers carry every element exactly (int64 past 2^53 do not, in either writer). */
const exactInJson = (t: TensorOut): boolean => !(t.data instanceof BigInt64Array) || t.form === 'base64' || t.data.every(v => v >= -(2n ** 53n) && v <= 2n ** 53n)

t.test('a result is written as JSON.stringify writes it with encodeTensor, byte for byte', async t => {
  fc.assert(fc.property(tensorOut, tensorOut, fc.double(), (loss, grad, extra) => {
    const result = { loss, grad: { input: grad }, extra: [extra, 'é"\n\ud800', null, true] }
    const mine = writeJson(result).toString()
    const want = reference({ ...result, extra: [Number.isFinite(extra) ? extra : String(extra), 'é"\n\ud800', null, true] })
    if (exactInJson(loss) && exactInJson(grad)) {
      if (mine !== want) throw new Error(`\n${mine.slice(0, 400)}\nvs\n${want.slice(0, 400)}`)
    } else {
      // int64 past 2^53 exactly, where encodeTensor rounds through a double: the same JSON values
      const d = difference(JSON.parse(mine), JSON.parse(want))
      if (d !== undefined) throw new Error(d)
      for (const x of [loss, grad]) {
        if (x.data instanceof BigInt64Array && x.form !== 'base64') for (const v of x.data) if (!mine.includes(v.toString())) throw new Error(`${v} not written exactly`)
      }
    }
  }), { seed: SEED, numRuns: 5 * RUNS })
})

t.test('what is written reads back bit for bit, with JSON.parse + decodeTensor and with readBody', async t => {
  fc.assert(fc.property(tensorOut, out => {
    const bytes = writeJson({ loss: out })
    const parsed = JSON.parse(bytes.toString()) as { loss: unknown }
    if (out.data instanceof BigInt64Array && out.form === 'flat' && out.data.some(v => v < -(2n ** 53n) + 1n || v > 2n ** 53n - 1n)) {
      // written exactly, and refused on reading: JSON numbers cannot carry them
      const refused = /is not an integer JSON carries exactly/
      t.throws(() => decodeTensor('loss', parsed.loss), refused)
      t.throws(() => readBody(bytes, new Set(['loss'])), refused)
      return
    }
    const read = readBody(bytes, new Set(['loss'])).loss as DecodedTensor
    const decoded = decodeTensor('loss', parsed.loss)
    if (!(read instanceof DecodedTensor)) throw new Error('not a DecodedTensor')
    // nested arrays end at the first zero dim: [2,0,3] is written [[],[]], read back [2,0]
    const zero = out.shape.indexOf(0)
    const shape = out.form === 'nested' && zero >= 0 ? out.shape.slice(0, zero + 1) : out.shape
    for (const got of [decoded, read]) {
      if (JSON.stringify(got.shape) !== JSON.stringify(shape)) throw new Error(`shape ${JSON.stringify(got.shape)} vs ${JSON.stringify(shape)}`)
      for (let i = 0; i < out.data.length; i++) {
        const v = out.data[i]
        const back = got.data[i]
        if (out.form === 'base64') {
          if (!Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength).equals(Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength))) throw new Error('base64 bytes differ')
          break
        }
        // the API writes -0 as 0 (as encodeTensor and JSON.stringify do); NaN has one spelling;
        // an int64 past 2^53 in nested form reads back as the double nearest to it
        const want = typeof v === 'bigint' ? Number(v) : v === 0 ? 0 : v
        const have = typeof back === 'bigint' ? Number(back) : out.dtype === 'float32' ? Math.fround(back) : back
        if (!Object.is(have, want)) throw new Error(`${out.dtype}/${out.form}[${i}]: ${String(v)} read back as ${String(back)}`)
      }
    }
  }), { seed: SEED, numRuns: 5 * RUNS })
})

t.test('float32 and float64 written as encodeTensor writes them, over bit patterns of every kind', async t => {
  const rnd = random(SEED)
  const n = 200000
  const bits = new Uint32Array(2 * n)
  for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(rnd() * 2 ** 32)
  // neighbours of powers of ten and of two, integers, tiny and huge values
  const special: number[] = []
  for (let e = -330; e <= 310; e++) for (const f of [1, 1 + 2 ** -52, 1 - 2 ** -53, 0.5, 5, Number('9.999999999999999')]) special.push(f * Number(`1e${e}`))
  for (let e = -1074; e <= 1023; e++) special.push(2 ** e, -(2 ** e) * 3)
  for (let i = 0; i < 1000; i++) special.push(i, -i * 1e6, 2 ** 53 - i, 1e21 - i * 1e6, 1e-7 * (1 + i / 1000))
  const f64 = Float64Array.from([...new Float64Array(bits.buffer), ...special])
  const f32 = Float32Array.from([...new Float32Array(bits.buffer), ...special])
  for (const [dtype, data] of [['float64', f64], ['float32', f32], ['float32', f64]] as const) {
    const mine = writeJson(new TensorOut(dtype, [data.length], data, 'flat')).toString()
    const want = JSON.stringify(encodeTensor(dtype, [data.length], data, 'flat'))
    if (mine === want) t.pass(`${dtype} from ${data.constructor.name}: ${data.length} values`)
    else {
      const a = (JSON.parse(mine) as { data: unknown[] }).data
      const b = (JSON.parse(want) as { data: unknown[] }).data
      const i = a.findIndex((x, j) => !Object.is(x, b[j]))
      t.fail(`${dtype}: ${String(data[i])} written ${String(a[i])}, encodeTensor ${String(b[i])}`)
    }
  }
})

t.test('examples', async t => {
  const w = (v: unknown): string => writeJson(v).toString()
  t.equal(w(new TensorOut('float32', [4], Float32Array.of(0.1, 1 / 3, 16777216, 3.4028234663852886e38), 'nested')), '[0.1,0.33333334,16777216,3.4028235e+38]')
  t.equal(w(new TensorOut('float32', [3], Float32Array.of(NaN, Infinity, -Infinity), 'nested')), '["NaN","Infinity","-Infinity"]')
  t.equal(w(new TensorOut('float64', [5], Float64Array.of(-0, 1e21, 1e-7, 123456789.125, 5e-324), 'nested')), '[0,1e+21,1e-7,123456789.125,5e-324]')
  t.equal(w(new TensorOut('int64', [3], BigInt64Array.of(2n ** 63n - 1n, -(2n ** 63n), -5n), 'flat')), '{"dtype":"int64","shape":[3],"data":[9223372036854775807,-9223372036854775808,-5]}')
  t.equal(w(new TensorOut('float32', [], Float32Array.of(0.5223726), 'nested')), '0.5223726')
  t.equal(w(new TensorOut('float32', [2, 0, 3], new Float32Array(0), 'nested')), '[[],[]]')
  t.equal(w(new TensorOut('float32', [0, 3], new Float32Array(0), 'nested')), '[]')
  t.equal(w(new TensorOut('int32', [2, 1, 2], Int32Array.of(1, -2, 3, 2147483647), 'nested')), '[[[1,-2]],[[3,2147483647]]]')
  t.equal(w(new TensorOut('float32', [2], Float32Array.of(1.5, -2), 'base64')), '{"dtype":"float32","shape":[2],"data":"AADAPwAAAMA="}')
  t.equal(w({ loss: 0.25, note: 'ü\u2028', list: [undefined, () => 1], skip: undefined, big: 12n, bad: NaN, neg: -Infinity }), '{"loss":0.25,"note":"ü\u2028","list":[null,null],"big":12,"bad":"NaN","neg":"-Infinity"}')
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  t.throws(() => writeJson(cycle), TypeError)
})

t.test('outputs far larger than the first buffer, in every form', async t => {
  const n = 300000
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 10 ** ((i % 20) - 10))
  for (const [form, shape] of [['nested', [n]], ['nested', [n / 3, 1, 3]], ['nested', [n, 1]], ['flat', [n]], ['base64', [n / 2, 2]]] as const) {
    const mine = writeJson({ loss: 1, grad: { input: new TensorOut('float32', shape as unknown as number[], data, form) } }).toString()
    t.equal(mine, JSON.stringify({ loss: 1, grad: { input: encodeTensor('float32', shape as unknown as number[], data, form) } }), `${form} ${JSON.stringify(shape)}`)
  }
})
