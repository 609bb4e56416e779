import { test } from 'tap'
import fc from 'fast-check'
import { firstOutside } from '../../src/tensor/scan'
import { type TensorData } from '../../src/tensor/tensor'

/** The same question asked one element at a time, as plain numbers (int64 ones as BigInt). */
function naive (data: TensorData, lo: number, hi: number, except?: number): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]
    if (typeof v === 'bigint') {
      const inside = (lo === -Infinity || v >= BigInt(Math.ceil(lo))) && (hi === Infinity || v <= BigInt(Math.floor(hi)))
      if (!inside && !(except !== undefined && v === BigInt(except))) return i
    } else if (!(v >= lo && v <= hi) && v !== except) return i
  }
  return -1
}

test('firstOutside agrees with an element-by-element scan in every dtype', t => {
  const values = fc.array(fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, -0.5, NaN, Infinity, -Infinity, 1.5)), { maxLength: 30 })
  const optionalExcept = fc.option(fc.integer({ min: -3, max: 3 }), { nil: undefined })
  fc.assert(fc.property(values, fc.integer({ min: -2, max: 1 }), fc.integer({ min: 0, max: 3 }), optionalExcept, (xs, lo, width, except) => {
    const hi = lo + width
    const ints = xs.map(x => Number.isFinite(x) ? Math.trunc(x) : 0)
    const arrays: TensorData[] = [Float32Array.from(xs), Float64Array.from(xs), Int32Array.from(ints), BigInt64Array.from(ints.map(BigInt))]
    return arrays.every(a => firstOutside(a, lo, hi, except) === naive(a, lo, hi, except))
  }))
  t.pass('agrees on random arrays, bounds and exceptions')
  t.end()
})

test('hand cases: NaN is outside, the exception is skipped, int64 compares exactly', t => {
  t.equal(firstOutside(Float32Array.of(0, 1, NaN), 0, 1), 2)
  t.equal(firstOutside(Float64Array.of(0.5, -100, 2), 0, 1, -100), 2)
  t.equal(firstOutside(Int32Array.of(0, 9, 10), 0, 9), 2)
  t.equal(firstOutside(BigInt64Array.of(0n, 2n ** 53n + 1n), 0, 2 ** 53), 1, '2^53 + 1 is past 2^53, though it rounds onto it as a number')
  t.equal(firstOutside(BigInt64Array.of(5n, -100n), 0, 9, -100), -1)
  t.equal(firstOutside(Float32Array.of(), 0, 1), -1)
  t.end()
})
