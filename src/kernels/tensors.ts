import type * as ort from 'onnxruntime-node'
import { type TensorData } from '../tensor/tensor'

/** A kernel input or output as plain data: what crosses to a worker thread and back. */
export interface KernelTensor {
  type: 'float32' | 'float64' | 'int64'
  dims: number[]
  data: Float32Array | Float64Array | BigInt64Array
}

/** Kernel inputs or outputs by name. */
export type KernelTensors = Record<string, KernelTensor>

/** Converts ORT's output tensors to plain data. */
export function fromOrt (out: ort.InferenceSession.OnnxValueMapType): KernelTensors {
  const res: KernelTensors = {}
  for (const [name, t] of Object.entries(out)) res[name] = { type: t.type as KernelTensor['type'], dims: [...t.dims], data: t.data as KernelTensor['data'] }
  return res
}

/** Rows [from, to) of a tensor along axis 0 (a copy, for one request's share of a batch). */
export function sliceRows (t: KernelTensor, from: number, to: number): KernelTensor {
  const row = t.dims.slice(1).reduce((n, d) => n * d, 1)
  return { type: t.type, dims: [to - from, ...t.dims.slice(1)], data: t.data.slice(from * row, to * row) as TensorData as KernelTensor['data'] }
}

/** Concatenates tensors along axis 0 (they agree on every other dim). */
export function concatRows (parts: KernelTensor[]): KernelTensor {
  const total = parts.reduce((n, p) => n + p.data.length, 0)
  const Arr = parts[0].data.constructor as { new (n: number): KernelTensor['data'] }
  const data = new Arr(total)
  let offset = 0
  for (const p of parts) {
    (data as Float64Array).set(p.data as Float64Array, offset)
    offset += p.data.length
  }
  return { type: parts[0].type, dims: [parts.reduce((n, p) => n + p.dims[0], 0), ...parts[0].dims.slice(1)], data }
}
