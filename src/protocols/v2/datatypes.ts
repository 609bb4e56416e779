import { fail } from '../../errors'
import { TENSOR_ALIGN, type TensorData, type WireDType } from '../../tensor/tensor'
import { V2_DATATYPES } from '../../../schemas/v2'

/** A V2 datatype losshub takes. */
export type V2DataType = typeof V2_DATATYPES[number]

const TO_WIRE: Record<V2DataType, WireDType> = { FP32: 'float32', FP64: 'float64', INT32: 'int32', INT64: 'int64' }
const FROM_WIRE: Record<WireDType, V2DataType> = { float32: 'FP32', float64: 'FP64', int32: 'INT32', int64: 'INT64' }

/** Bytes of one element of each datatype. */
export const ELEMENT_BYTES: Record<V2DataType, number> = { FP32: 4, FP64: 8, INT32: 4, INT64: 8 }

/** The losshub dtype of a V2 datatype; any other datatype is a 400 naming the input. */
export function wireDType (where: string, datatype: string): WireDType {
  if (!(V2_DATATYPES as readonly string[]).includes(datatype)) {
    fail('INVALID_DTYPE', `${where}.datatype: expected one of ${V2_DATATYPES.join(', ')}, got ${JSON.stringify(datatype)}`)
  }
  return TO_WIRE[datatype as V2DataType]
}

/** The V2 datatype of a losshub dtype. */
export function v2DataType (dtype: WireDType): V2DataType { return FROM_WIRE[dtype] }

/**
 * The little-endian bytes `bytes[offset, offset + n * size)` as a typed array: a view over the
 * same memory when it starts `TENSOR_ALIGN`-aligned, else an aligned copy. In shared memory a
 * view suits the element size only: a kernel worker copies it out to memory of its own anyway.
 */
export function typedView (datatype: V2DataType, bytes: Buffer, offset: number, n: number): TensorData {
  const size = ELEMENT_BYTES[datatype]
  const start = bytes.byteOffset + offset
  const Arr = { FP32: Float32Array, FP64: Float64Array, INT32: Int32Array, INT64: BigInt64Array }[datatype]
  const shared = bytes.buffer instanceof SharedArrayBuffer
  if (start % (shared ? size : TENSOR_ALIGN) === 0) return new Arr(bytes.buffer as ArrayBuffer, start, n)
  // memory of its own (malloc's, 16-byte aligned), not Node's pool of small buffers (8-byte aligned)
  const copy = Buffer.allocUnsafeSlow(n * size)
  bytes.copy(copy, 0, offset, offset + n * size)
  return new Arr(copy.buffer as ArrayBuffer, copy.byteOffset, n)
}
