/** Shorter copies are made by `TypedArray.set`: below this, a native call costs more than it saves. */
const SMALLEST_NATIVE = 256

/**
 * Copies `source` into `target` at byte `offset`, as `target.set(source, offset)` does. V8
 * copies to or from shared memory (a SharedArrayBuffer) with relaxed atomic loads and stores:
 * a word at a time when the two sides sit at the same offset modulo 8, else a byte at a time,
 * four to six times slower (a 16 MiB V2 body arriving in 64 KiB socket chunks took 10 ms of the
 * event loop to land in shared memory, against 2 ms aligned). Such a copy is made by
 * `Buffer.fill` with the source as its pattern, over exactly the source's length: Node fills
 * with one plain `memcpy`, whatever the alignment (`BENCH_PARTS=copy npm run bench:kernels`).
 */
export function copyBytes (source: Uint8Array, target: Uint8Array, offset: number): void {
  const shared = source.buffer instanceof SharedArrayBuffer || target.buffer instanceof SharedArrayBuffer
  // memcpy is for memory that does not overlap: views of one buffer keep set's memmove
  if (!shared || source.length < SMALLEST_NATIVE || source.buffer === target.buffer) {
    target.set(source, offset)
    return
  }
  if (offset < 0 || offset + source.length > target.length) throw new RangeError('offset is out of bounds')
  Buffer.from(target.buffer, target.byteOffset + offset, source.length).fill(source)
}

/** Elements converted per step by `setElements`: scratch arrays of 64 KiB at most, which stay in cache. */
const CONVERT_STEP = 8192

type Elements = Float32Array | Float64Array | Int32Array

// plain memory for one step of a conversion, by element type
const scratch = { Float32Array: new Float32Array(CONVERT_STEP), Float64Array: new Float64Array(CONVERT_STEP), Int32Array: new Int32Array(CONVERT_STEP) }

function scratchLike (a: Elements): Elements { return scratch[a[Symbol.toStringTag]] }

/**
 * Stores `source`'s numbers into `target` from element 0, as `target.set(source)` does,
 * converting them where the types differ. V8 converts from or into shared memory an element at
 * a time with relaxed atomic loads and stores, at half the speed of plain memory (a [256,1000]
 * float64 tensor to float32: 0.5 to 0.8 ms, against 0.35 to 0.5 this way): such a conversion
 * goes a step at a time through small scratch arrays of plain memory, which `copyBytes` fills
 * from shared memory and empties into it.
 */
export function setElements (target: Float32Array | Float64Array, source: Elements): void {
  const shared = source.buffer instanceof SharedArrayBuffer || target.buffer instanceof SharedArrayBuffer
  if (!shared || source.length < SMALLEST_NATIVE || source.buffer === target.buffer) {
    target.set(source)
    return
  }
  const into = bytesOf(target)
  if (source[Symbol.toStringTag] === target[Symbol.toStringTag]) {
    copyBytes(bytesOf(source), into, 0)
    return
  }
  // each step: the source's numbers, staged in plain memory if shared; converted into the
  // target, through plain memory if shared
  const stageIn = source.buffer instanceof SharedArrayBuffer
  const stageOut = target.buffer instanceof SharedArrayBuffer
  const from = bytesOf(source)
  const inStep = scratchLike(source)
  const outStep = scratchLike(target) as Float32Array | Float64Array
  const inBytes = bytesOf(inStep)
  const outBytes = bytesOf(outStep)
  const inWidth = inStep.BYTES_PER_ELEMENT
  const outWidth = outStep.BYTES_PER_ELEMENT
  for (let i = 0; i < source.length; i += CONVERT_STEP) {
    const n = Math.min(CONVERT_STEP, source.length - i)
    if (stageIn) copyBytes(from.subarray(i * inWidth, (i + n) * inWidth), inBytes, 0)
    const numbers = stageIn ? inStep.subarray(0, n) : source.subarray(i, i + n)
    if (!stageOut) {
      target.set(numbers, i)
      continue
    }
    outStep.set(numbers)
    copyBytes(outBytes.subarray(0, n * outWidth), into, i * outWidth)
  }
}

/** The bytes of a typed array, as a view over the same memory. */
export function bytesOf (data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}
