import t from 'tap'
import { encodeTensor } from '../../src/tensor/encode'

t.test('nested form: shape restored, 0-d as a bare number, non-finite as strings', async t => {
  t.same(encodeTensor('float64', [2, 2], Float64Array.of(1, NaN, Infinity, -Infinity), 'nested'), [[1, 'NaN'], ['Infinity', '-Infinity']])
  t.equal(encodeTensor('float64', [], Float64Array.of(0.25), 'nested'), 0.25)
  t.same(encodeTensor('float32', [0], new Float32Array(0), 'nested'), [])
})

t.test('float32 values are written with the shortest decimal that reads back the same', async t => {
  const v = encodeTensor('float32', [3], Float32Array.of(0.1, 1 / 3, 0.5223726), 'nested') as number[]
  t.same(v, [0.1, 0.33333334, 0.5223726])
  for (const x of v) t.equal(Math.fround(x), x === 0.1 ? Math.fround(0.1) : Math.fround(x))
})

t.test('flat and base64 forms carry dtype and shape', async t => {
  t.same(encodeTensor('float64', [2], Float64Array.of(1, 2), 'flat'), { dtype: 'float64', shape: [2], data: [1, 2] })
  const b = encodeTensor('float32', [2], Float32Array.of(1.5, -2), 'base64') as { data: string }
  t.same(Array.from(new Float32Array(new Uint8Array(Buffer.from(b.data, 'base64')).buffer)), [1.5, -2])
})
