/** Binary tensor bytes as typed arrays: views over the body where aligned, copies where not. */
import t from 'tap'
import { typedView, wireDType } from '../../../src/protocols/v2/datatypes'
import { LosshubError } from '../../../src/errors'

t.test('an aligned tensor is a view over the body; a misaligned one an equal copy', async t => {
  const body = Buffer.alloc(64)
  // float64 1.5, -2 at byte 8; int32 7, -1 at byte 33 (misaligned)
  body.writeDoubleLE(1.5, 8)
  body.writeDoubleLE(-2, 16)
  body.writeInt32LE(7, 33)
  body.writeInt32LE(-1, 37)
  const aligned = body.byteOffset % 8 === 0 // Buffer.alloc gives aligned memory
  t.ok(aligned)

  const f64 = typedView('FP64', body, 8, 2)
  t.ok(f64 instanceof Float64Array)
  t.same(Array.from(f64 as Float64Array), [1.5, -2])
  t.ok(f64.buffer === body.buffer, 'same memory')
  body.writeDoubleLE(3, 8)
  t.equal(f64[0], 3, 'a view sees the body')

  const i32 = typedView('INT32', body, 33, 2)
  t.ok(i32 instanceof Int32Array)
  t.same(Array.from(i32 as Int32Array), [7, -1])
  t.ok(i32.buffer !== body.buffer, 'a copy')

  const i64 = typedView('INT64', body, 41, 1)
  t.ok(i64 instanceof BigInt64Array, 'INT64 keeps 64 bits (a misaligned copy)')
})

t.test('datatypes: the four V2 names, anything else a 400 naming the input', async t => {
  t.same(['FP32', 'FP64', 'INT32', 'INT64'].map(d => wireDType('x', d)), ['float32', 'float64', 'int32', 'int64'])
  t.throws(() => wireDType('inputs[0] (input)', 'FP16'), new LosshubError('INVALID_DTYPE', 'inputs[0] (input).datatype: expected one of FP32, FP64, INT32, INT64, got "FP16"'))
})
