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

/** The bytes of a typed array, as a view over the same memory. */
export function bytesOf (data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}
