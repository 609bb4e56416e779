import { type TensorData } from './tensor'

/**
 * The flat position of the first element outside [lo, hi] that is not `except`, or -1. NaN is
 * outside every range. One loop per array type, so that each stays monomorphic: a generic
 * loop through `at` costs about 20 ns an element, these under 1.
 */
export function firstOutside (data: TensorData, lo: number, hi: number, except?: number): number {
  const skip = except ?? NaN // NaN never equals an element
  if (data instanceof Float32Array) return outsideF32(data, lo, hi, skip)
  if (data instanceof Float64Array) return outsideF64(data, lo, hi, skip)
  if (data instanceof Int32Array) return outsideI32(data, lo, hi, skip)
  return outsideI64(data, lo, hi, skip)
}

function outsideF32 (d: Float32Array, lo: number, hi: number, skip: number): number {
  for (let i = 0; i < d.length; i++) {
    const v = d[i]
    if (!(v >= lo && v <= hi) && v !== skip) return i
  }
  return -1
}

function outsideF64 (d: Float64Array, lo: number, hi: number, skip: number): number {
  for (let i = 0; i < d.length; i++) {
    const v = d[i]
    if (!(v >= lo && v <= hi) && v !== skip) return i
  }
  return -1
}

function outsideI32 (d: Int32Array, lo: number, hi: number, skip: number): number {
  for (let i = 0; i < d.length; i++) {
    const v = d[i]
    if (!(v >= lo && v <= hi) && v !== skip) return i
  }
  return -1
}

/** int64 elements compared exactly: bounds and `skip` as BigInt (a non-integer bound rounds inwards). */
function outsideI64 (d: BigInt64Array, lo: number, hi: number, skip: number): number {
  const min = lo === -Infinity ? undefined : BigInt(Math.ceil(lo))
  const max = hi === Infinity ? undefined : BigInt(Math.floor(hi))
  const except = Number.isInteger(skip) ? BigInt(skip) : undefined
  for (let i = 0; i < d.length; i++) {
    const v = d[i]
    if ((min === undefined || v >= min) && (max === undefined || v <= max)) continue
    if (v !== except) return i
  }
  return -1
}
