import type * as ort from 'onnxruntime-node'
import { bytesOf, copyBytes } from '../tensor/copy-bytes'
import { isOwnMemory, ownMemory, type TensorData } from '../tensor/tensor'

/** A kernel input or output as plain data: what crosses to a worker thread and back. */
export interface KernelTensor {
  type: 'float32' | 'float64' | 'int64'
  dims: number[]
  data: Float32Array | Float64Array | BigInt64Array
  /**
   * The request argument whose own array `data` is (not a copy of it): when the array is
   * moved to a kernel worker and handed back, the argument is given the returned array too.
   */
  source?: { data: TensorData }
}

/** Kernel inputs or outputs by name. */
export type KernelTensors = Record<string, KernelTensor>

/** Converts ORT's output tensors to plain data. */
export function fromOrt (out: ort.InferenceSession.OnnxValueMapType): KernelTensors {
  const res: KernelTensors = {}
  for (const [name, t] of Object.entries(out)) res[name] = { type: t.type as KernelTensor['type'], dims: [...t.dims], data: t.data as KernelTensor['data'] }
  return res
}

/**
 * Rows [from, to) of a tensor along axis 0, one request's share of a batch: a view over the
 * batch's array, not a copy. The view keeps the whole batch's array alive until every share
 * is dropped; a batch is bounded by BATCH_MAX_ELEMENTS and its shares are encoded at once.
 */
export function sliceRows (t: KernelTensor, from: number, to: number): KernelTensor {
  const row = t.dims.slice(1).reduce((n, d) => n * d, 1)
  return { type: t.type, dims: [to - from, ...t.dims.slice(1)], data: t.data.subarray(from * row, to * row) }
}

/** Concatenates tensors along axis 0 (they agree on every other dim). */
export function concatRows (parts: KernelTensor[]): KernelTensor {
  const total = parts.reduce((n, p) => n + p.data.length, 0)
  const Arr = parts[0].data.constructor as { new (n: number): KernelTensor['data'] }
  const data = new Arr(total)
  const bytes = bytesOf(data)
  let offset = 0
  for (const p of parts) {
    copyBytes(bytesOf(p.data), bytes, offset)
    offset += p.data.byteLength
  }
  return { type: parts[0].type, dims: [parts.reduce((n, p) => n + p.dims[0], 0), ...parts[0].dims.slice(1)], data }
}

/** A tensor whose array is its own: a lent argument's array is copied, anything else kept. */
export function owned (t: KernelTensor): KernelTensor {
  return t.source === undefined ? t : { type: t.type, dims: t.dims, data: t.data.slice() }
}

/** Bytes of the tensors' arrays. */
export function tensorBytes (tensors: KernelTensors): number {
  let n = 0
  for (const t of Object.values(tensors)) n += t.data.byteLength
  return n
}

/**
 * The buffers that may move to another thread instead of being copied, each once: ArrayBuffers
 * that an array spans whole, and those a view lies in when the buffer holds one request's data
 * only (`ownMemory`: a binary body whose tensors are views into it). Any other view is copied,
 * so that nothing else its buffer holds is taken away. SharedArrayBuffers are shared as they are.
 */
export function movable (tensors: KernelTensors): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>()
  for (const t of Object.values(tensors)) {
    const b = t.data.buffer
    // an empty buffer gains nothing by moving, and one already moved away (detached) would reach
    // the worker as a message it cannot read: cloning refuses it here instead
    if (b instanceof ArrayBuffer && b.byteLength > 0 && ((t.data.byteOffset === 0 && t.data.byteLength === b.byteLength) || isOwnMemory(b))) out.add(b)
  }
  return [...out]
}

/** Plain tensors without their `source`, as they are posted to a worker. */
export function bare (tensors: KernelTensors): KernelTensors {
  const out: KernelTensors = {}
  for (const [name, t] of Object.entries(tensors)) out[name] = { type: t.type, dims: t.dims, data: t.data }
  return out
}

/**
 * Puts arrays handed back by a worker in place of the ones that were moved to it (and into
 * the arguments they were lent by), so that the caller's tensors are readable again.
 */
export function restore (tensors: KernelTensors, returned: KernelTensors): void {
  for (const [name, t] of Object.entries(tensors)) {
    const back = returned[name]
    if (back === undefined || back.data === t.data) continue
    if (isOwnMemory(t.data.buffer) && back.data.buffer instanceof ArrayBuffer) ownMemory(back.data.buffer)
    t.data = back.data
    if (t.source !== undefined) t.source.data = back.data
  }
}
