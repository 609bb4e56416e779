import t, { type Test } from 'tap'
import { decodeTensor } from '../../src/tensor/decode'
import { LosshubError } from '../../src/errors'

const b64 = (a: ArrayBufferView): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')

t.test('nested arrays: shape inferred, float64 storage, no dtype, non-finite strings', async t => {
  const d = decodeTensor('input', [[0.1, 2], ['NaN', '-Infinity']])
  t.same(d.shape, [2, 2])
  t.equal(d.dtype, undefined)
  t.equal(d.form, 'nested')
  t.same(Array.from(d.data as Float64Array), [0.1, 2, NaN, -Infinity])
})

t.test('a bare number is a 0-d tensor; [] is shape [0]', async t => {
  t.same(decodeTensor('x', 3.5).shape, [])
  t.same(decodeTensor('x', 'Infinity').data[0], Infinity)
  t.same(decodeTensor('x', []).shape, [0])
})

t.test('typed flat keeps its dtype', async t => {
  const d = decodeTensor('target', { dtype: 'int64', shape: [3], data: [0, 1, 2] })
  t.equal(d.dtype, 'int64')
  t.same(Array.from(d.data as BigInt64Array), [0n, 1n, 2n])
  const f = decodeTensor('input', { dtype: 'float64', shape: [1, 2], data: [1, 'Infinity'] })
  t.same(Array.from(f.data as Float64Array), [1, Infinity])
})

t.test('typed flat data already read into a Float64Array or Float32Array decodes as the same numbers in an array do', async t => {
  const outcome = (dtype: string, data: unknown): unknown => {
    try {
      const d = decodeTensor('x', { dtype, shape: [4], data })
      return [d.dtype, d.form, d.data.constructor.name, Array.from(d.data as ArrayLike<number | bigint>, String)]
    } catch (err) {
      return (err as LosshubError).message
    }
  }
  const values = [[0.1, -2, 3e38, NaN], [1, -7, 2 ** 31, -(2 ** 53)], [1, 2.5, 3, 4], [2 ** 53, 1, 2, 3], [1, 2, 3]]
  for (const dtype of ['float32', 'float64', 'int32', 'int64']) {
    for (const v of values) t.same(outcome(dtype, Float64Array.from(v)), outcome(dtype, v), `${dtype} ${JSON.stringify(v)}`)
  }
  const f64 = Float64Array.of(1, 2, 3, 4)
  t.equal(decodeTensor('x', { dtype: 'float64', shape: [4], data: f64 }).data, f64, 'float64: the array itself, not a copy')
  t.same(outcome('float32', Float64Array.of(0.1, 1e300, -1e-50, 1)), ['float32', 'flat', 'Float32Array', [String(Math.fround(0.1)), 'Infinity', '0', '1']], 'float32: rounded as assignment rounds')
  // gRPC's fp32 contents arrive as a Float32Array
  for (const dtype of ['float32', 'float64', 'int32', 'int64']) {
    for (const v of values) t.same(outcome(dtype, Float32Array.from(v)), outcome(dtype, Array.from(Float32Array.from(v))), `${dtype} ${JSON.stringify(v)} from a Float32Array`)
  }
  const f32 = Float32Array.of(1, 2, 3, 4)
  t.equal(decodeTensor('x', { dtype: 'float32', shape: [4], data: f32 }).data, f32, 'float32: the array itself')
})

t.test('typed base64 reads little-endian bytes of each dtype', async t => {
  t.same(Array.from(decodeTensor('a', { dtype: 'float32', shape: [2], data: b64(Float32Array.of(0.5, -2)) }).data as Float32Array), [0.5, -2])
  t.same(Array.from(decodeTensor('a', { dtype: 'float64', shape: [1], data: b64(Float64Array.of(0.1)) }).data as Float64Array), [0.1])
  t.same(Array.from(decodeTensor('a', { dtype: 'int32', shape: [2], data: b64(Int32Array.of(-1, 7)) }).data as Int32Array), [-1, 7])
  t.same(Array.from(decodeTensor('a', { dtype: 'int64', shape: [1], data: b64(BigInt64Array.of(9n)) }).data as BigInt64Array), [9n])
  t.equal(decodeTensor('a', { dtype: 'int64', shape: [1], data: b64(BigInt64Array.of(9n)) }).form, 'base64')
  // the URL-safe alphabet is read as the standard one ('-' for '+', '_' for '/')
  t.same(Array.from(decodeTensor('a', { dtype: 'float64', shape: [1], data: 'AAAAAAAA-D8=' }).data as Float64Array), [1.5])
  t.same(Array.from(decodeTensor('a', { dtype: 'float32', shape: [1], data: '__9_fw==' }).data as Float32Array), [3.4028234663852886e38])
})

function rejects (t: Test, json: unknown, code: string, message: RegExp): void {
  try {
    decodeTensor('input', json)
    t.fail(`expected ${code} for ${JSON.stringify(json)}`)
  } catch (err) {
    t.ok(err instanceof LosshubError, 'a coded error')
    t.equal((err as LosshubError).code, code)
    t.match((err as LosshubError).message, message)
  }
}

t.test('malformed tensors are 400s naming the argument', async t => {
  rejects(t, [[1, 2], [3]], 'INVALID_TENSOR', /^input\[1\]: ragged nested arrays: expected length 2/)
  rejects(t, [1, [2]], 'INVALID_TENSOR', /^input\[1\]: ragged/)
  rejects(t, [[1], 2], 'INVALID_TENSOR', /^input\[1\]: ragged/)
  rejects(t, [1, 'x'], 'INVALID_TENSOR', /^input\[1\]: expected a number/)
  rejects(t, [1, null], 'INVALID_TENSOR', /^input\[1\]: expected a number or "NaN".*got null/)
  rejects(t, { dtype: 'float32', shape: [2, 2], data: [1, 2, 3] }, 'INVALID_TENSOR', /^input\.data: shape \[2,2\] needs 4 elements, got 3/)
  rejects(t, { dtype: 'float16', shape: [1], data: [1] }, 'INVALID_DTYPE', /^input\.dtype: expected one of float32, float64, int32, int64/)
  rejects(t, { dtype: 'float32', shape: [-1], data: [] }, 'INVALID_TENSOR', /^input\.shape/)
  rejects(t, { dtype: 'float32', shape: [2], data: 'AAAA' }, 'INVALID_TENSOR', /^input\.data: base64 must hold 2 float32 elements \(8 bytes, 12 base64 characters\) for shape \[2\], got 4 characters/)
  rejects(t, { dtype: 'float32', shape: [1], data: 'A$A=AA==' }, 'INVALID_TENSOR', /got invalid base64/)
  rejects(t, { dtype: 'float32', shape: [1], data: 'A$AA' }, 'INVALID_TENSOR', /got 4 characters/)
  // junk where '=' belongs (Node's decoder skips it, and the count came out right), or a data
  // character there (one byte too many)
  rejects(t, { dtype: 'float32', shape: [1], data: '!AACAPw=' }, 'INVALID_TENSOR', /^input\.data: base64 must hold 1 float32 elements \(4 bytes, 8 base64 characters\) for shape \[1\], got invalid base64/)
  rejects(t, { dtype: 'float32', shape: [1], data: 'AACA Pw=' }, 'INVALID_TENSOR', /got invalid base64/)
  rejects(t, { dtype: 'float32', shape: [1], data: 'AACAPwA=' }, 'INVALID_TENSOR', /got invalid base64/)
  rejects(t, { dtype: 'float64', shape: [1], data: 'AAAAAAAA+D8\n' }, 'INVALID_TENSOR', /got invalid base64/)
  rejects(t, { dtype: 'int64', shape: [1], data: [1.5] }, 'INVALID_TENSOR', /^input\.data\[0\]: int64 elements must be integers/)
  rejects(t, { dtype: 'int32', shape: [1], data: [2 ** 40] }, 'INVALID_TENSOR', /does not fit int32/)
  rejects(t, [[[[[[[[[1]]]]]]]]], 'INVALID_TENSOR', /nested deeper than 8/)
})
