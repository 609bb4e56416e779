/** Binary tensor bytes as typed arrays: views over the body where aligned, copies where not. */
import t from 'tap'
import { typedView, wireDType } from '../../../src/protocols/v2/datatypes'
import { LosshubError } from '../../../src/errors'

t.test('a tensor 16-byte aligned is a view over the body; any other an equal copy in aligned memory of its own', async t => {
  const body = Buffer.from(new ArrayBuffer(80))
  // float64 1.5, -2 at byte 16; float32 0.5, 2 at byte 40 (4-byte aligned, 8 off 16); int32 7, -1 at byte 51
  body.writeDoubleLE(1.5, 16)
  body.writeDoubleLE(-2, 24)
  body.writeFloatLE(0.5, 40)
  body.writeFloatLE(2, 44)
  body.writeInt32LE(7, 51)
  body.writeInt32LE(-1, 55)

  const f64 = typedView('FP64', body, 16, 2)
  t.ok(f64 instanceof Float64Array)
  t.same(Array.from(f64 as Float64Array), [1.5, -2])
  t.ok(f64.buffer === body.buffer, 'same memory')
  body.writeDoubleLE(3, 16)
  t.equal(f64[0], 3, 'a view sees the body')

  // ONNX Runtime answers such data a last bit differently (TENSOR_ALIGN): a copy, though float32 could be a view
  const f32 = typedView('FP32', body, 40, 2)
  t.same(Array.from(f32 as Float32Array), [0.5, 2])
  t.ok(f32.buffer !== body.buffer && f32.byteOffset === 0, 'a copy at the start of memory of its own')

  const i32 = typedView('INT32', body, 51, 2)
  t.ok(i32 instanceof Int32Array)
  t.same(Array.from(i32 as Int32Array), [7, -1])
  t.ok(i32.buffer !== body.buffer, 'a copy')

  const i64 = typedView('INT64', body, 59, 1)
  t.ok(i64 instanceof BigInt64Array, 'INT64 keeps 64 bits (a misaligned copy)')

  // in shared memory a view only needs the element's alignment: a kernel worker copies it out anyway
  const shared = Buffer.from(new SharedArrayBuffer(64))
  shared.writeFloatLE(0.25, 8)
  const s32 = typedView('FP32', shared, 8, 1)
  t.ok(s32.buffer === shared.buffer, 'a view over shared memory')
  t.same(Array.from(s32 as Float32Array), [0.25])
})

t.test('datatypes: the four V2 names, anything else a 400 naming the input', async t => {
  t.same(['FP32', 'FP64', 'INT32', 'INT64'].map(d => wireDType('x', d)), ['float32', 'float64', 'int32', 'int64'])
  t.throws(() => wireDType('inputs[0] (input)', 'FP16'), new LosshubError('INVALID_DTYPE', 'inputs[0] (input).datatype: expected one of FP32, FP64, INT32, INT64, got "FP16"'))
})
