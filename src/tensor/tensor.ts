import { setElements } from './copy-bytes'
import { type TensorMemory } from './json-reader'

/** Element types a tensor can arrive in. */
export type WireDType = 'float32' | 'float64' | 'int32' | 'int64'

/** The three tensor forms of the API; a response mirrors the request's. */
export type TensorForm = 'nested' | 'flat' | 'base64'

/** Typed-array storage of a decoded tensor. */
export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array

/** A tensor decoded from a request (or to encode into a response). */
export interface HostTensor {
  /** The declared dtype; undefined for nested arrays, whose type the argument decides. */
  dtype: WireDType | undefined
  shape: number[]
  data: TensorData
  form: TensorForm
}

/**
 * A tensor argument already decoded from the request's bytes (src/tensor/json-reader.ts, or a
 * protocol's raw tensor data). Plain JSON values never have this class, so `instanceof`
 * tells the two apart, and `decodeTensor` passes it through as it is.
 */
export class DecodedTensor implements HostTensor {
  constructor (public dtype: WireDType | undefined, public shape: number[], public data: TensorData, public form: TensorForm) {}
}

/** Number of elements of a shape. */
export function sizeOf (shape: readonly number[]): number {
  let n = 1
  for (const d of shape) n *= d
  return n
}

/** A shape as written in messages: `[2,3]`, `[]` for 0-d. */
export function fmtShape (shape: readonly number[]): string { return `[${shape.join(',')}]` }

/** Whether two shapes are equal. */
export function sameShape (a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i])
}

/** The numpy/PyTorch broadcast of shapes, or undefined when they do not broadcast. */
export function broadcastShapes (...shapes: ReadonlyArray<readonly number[]>): number[] | undefined {
  const rank = Math.max(0, ...shapes.map(s => s.length))
  const out: number[] = []
  for (let i = 0; i < rank; i++) {
    let d = 1
    for (const s of shapes) {
      const e = s[s.length - rank + i] ?? 1
      if (e === 1) continue
      if (d !== 1 && d !== e) return undefined
      d = e
    }
    out.push(d)
  }
  return out
}

/**
 * Element i as a JS number. An int64 past 2^53 rounds to a number past 2^53, which no range
 * check accepts and no safe-integer option equals, so checks through `at` stay exact.
 */
export function at (data: TensorData, i: number): number {
  return typeof data[i] === 'bigint' ? Number(data[i]) : (data[i] as number)
}

/**
 * The byte alignment of tensor data handed to ONNX Runtime. Its CPU kernels give some elements
 * a last bit of their own when the data sits 8 bytes off a 16-byte boundary
 * (categorical_crossentropy, dice over probabilities: the same V2 binary request answered two
 * ways as its JSON header grew a byte at a time, in 8-byte steps), and fresh buffers (malloc) are
 * 16-byte aligned: so every front door hands the kernels tensors there, and one request gets one
 * answer whatever its path.
 */
export const TENSOR_ALIGN = 16

/** `bytes` rounded up to a multiple of TENSOR_ALIGN: where the next aligned tensor may start. */
export function alignedUp (bytes: number): number { return Math.ceil(bytes / TENSOR_ALIGN) * TENSOR_ALIGN }

/**
 * ArrayBuffers that hold nothing but one request's data (a body read into memory of its own):
 * a tensor that is a view into one of them may take the whole buffer with it to another
 * thread. Any other buffer (Node's shared pool behind small Buffers) is never moved for a view.
 */
const OWN_MEMORY = new WeakSet<ArrayBuffer>()

/** Marks `memory` as holding one request's data only (see `isOwnMemory`). */
export function ownMemory (memory: ArrayBuffer): void {
  OWN_MEMORY.add(memory)
}

/** Whether `memory` was marked by `ownMemory`. */
export function isOwnMemory (memory: ArrayBufferLike): boolean {
  return memory instanceof ArrayBuffer && OWN_MEMORY.has(memory)
}

/** A float array's type: its constructors and element size. */
interface FloatArrayType<A> { new (length: number): A, new (buffer: ArrayBufferLike, offset: number, length: number): A, BYTES_PER_ELEMENT: number }

/**
 * Float elements in a new array of type `Arr`, each rounded as a typed array stores it, in
 * `memory` when that provides some: reused memory costs no page faults, where a fresh megabyte
 * costs 256 (converting a [256,1000] nested request took 0.8 ms in fresh memory, 0.35 reused).
 */
export function converted<A extends Float32Array | Float64Array> (Arr: FloatArrayType<A>, d: TensorData, memory: TensorMemory | undefined): A {
  const buffer = memory?.(Arr.BYTES_PER_ELEMENT * d.length)
  const out = buffer === undefined ? new Arr(d.length) : new Arr(buffer, 0, d.length)
  // int64 never gets here: a float argument refuses it (prepare.ts), an integer one converts it itself
  if (d instanceof BigInt64Array) throw new TypeError('int64 elements are not converted to floats here')
  setElements(out, d)
  return out
}

/** The shortest decimal that reads back as the same float32 (0.1f is written 0.1, not 0.10000000149). */
export function shortestFloat32 (v: number): number {
  for (let p = 6; p < 9; p++) {
    const r = Number(v.toPrecision(p))
    if (Math.fround(r) === v) return r
  }
  return v
}

/** Element i as a message shows it: a float32 in the shortest form that reads back to it (1.2, not 1.2000000476837158). */
export function shown (data: TensorData, i: number): string {
  // an int64 as itself: past 2^53 its Number is another integer
  if (data instanceof BigInt64Array) return String(data[i])
  const v = at(data, i)
  return String(data instanceof Float32Array && Number.isFinite(v) ? shortestFloat32(v) : v)
}
