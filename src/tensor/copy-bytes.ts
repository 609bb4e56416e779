/** Bytes a misaligned copy to or from shared memory goes through at a time. */
export const SCRATCH_BYTES = 64 * 1024

/** Shorter copies are made directly: a few bytes one by one cost less than two copies. */
const SMALLEST_BOUNCED = 256

// one per thread (a module instance per worker thread), lent for the length of one copy
let scratch: Uint8Array | undefined

/**
 * Copies `source` into `target` at byte `offset`, as `target.set(source, offset)` does. V8
 * copies to or from shared memory (a SharedArrayBuffer) with relaxed atomic loads and stores:
 * a word at a time when the two sides sit at the same offset modulo 8, else a byte at a time,
 * four to six times slower (a 16 MiB V2 body arriving in 64 KiB socket chunks took 10 ms of the
 * event loop to land in shared memory, against 2 ms aligned). Such a copy goes through a small
 * scratch buffer placed to agree with its shared side, so that one step is a word-wise relaxed
 * copy and the other a plain memmove between unshared buffers.
 */
export function copyBytes (source: Uint8Array, target: Uint8Array, offset: number): void {
  const sharedSource = source.buffer instanceof SharedArrayBuffer
  const sharedTarget = target.buffer instanceof SharedArrayBuffer
  const skew = (source.byteOffset - target.byteOffset - offset) & 7
  // both shared: no placement of the scratch agrees with both sides
  if (sharedSource === sharedTarget || skew === 0 || source.length < SMALLEST_BOUNCED) {
    target.set(source, offset)
    return
  }
  const bounce = scratch ??= new Uint8Array(SCRATCH_BYTES + 8)
  for (let at = 0; at < source.length; at += SCRATCH_BYTES) {
    const n = Math.min(SCRATCH_BYTES, source.length - at)
    // the scratch's own memory starts 8-byte aligned, as every ArrayBuffer's does
    const k = (sharedTarget ? target.byteOffset + offset + at : source.byteOffset + at) & 7
    const piece = bounce.subarray(k, k + n)
    piece.set(source.subarray(at, at + n))
    target.set(piece, offset + at)
  }
}

/** The bytes of a typed array, as a view over the same memory. */
export function bytesOf (data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}
