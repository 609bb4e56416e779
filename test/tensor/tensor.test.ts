import t from 'tap'
import { shown } from '../../src/tensor/tensor'

t.test('shown: an element as a message shows it', async t => {
  t.equal(shown(Float32Array.of(1.2), 0), '1.2', 'a float32 in its shortest form, not 1.2000000476837158')
  t.equal(shown(Float32Array.of(NaN, -Infinity), 1), '-Infinity')
  t.equal(shown(Float64Array.of(0.1 + 0.2), 0), '0.30000000000000004', 'a float64 as it is')
  t.equal(shown(Int32Array.of(-7), 0), '-7')
  // past 2^53 an int64's Number is a neighbouring integer: the message shows the value sent
  t.equal(shown(BigInt64Array.of(2n ** 53n + 1n), 0), '9007199254740993')
  t.equal(shown(BigInt64Array.of(-(2n ** 63n)), 0), '-9223372036854775808')
})
