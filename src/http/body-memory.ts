import { MemoryPool } from '../tensor/memory-pool'

/**
 * Memory for request bodies, reused from one body to the next (see MemoryPool for why).
 * - A body whose parsed value keeps nothing of it (JSON: every value is decoded into memory of
 *   its own) gives its memory back as soon as it is parsed.
 * - A body whose tensors are views into it (V2's binary form) is read into shared memory, which
 *   a kernel worker reads in place (no transfer that detaches it), and gives it back once its
 *   request is answered (`keepBody` / `releaseBody`).
 */

/** Most bytes kept for reuse per pool; what is given back past it is left to the garbage collector. */
export const KEPT_BODY_BYTES = 32 * 2 ** 20

/** Smaller bodies are not kept: their pages are few and Node's allocator serves them well. */
export const SMALLEST_KEPT_BODY = 256 * 2 ** 10

const local = new MemoryPool<ArrayBuffer>(size => Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer, KEPT_BODY_BYTES, SMALLEST_KEPT_BODY)
const shared = new MemoryPool<SharedArrayBuffer>(size => new SharedArrayBuffer(size), KEPT_BODY_BYTES, SMALLEST_KEPT_BODY)

/** An ArrayBuffer of at least `size` bytes (uninitialised), kept or fresh. */
export function takeMemory (size: number): ArrayBuffer { return local.take(size) }

/** Gives `memory` back for a later body; nothing may read or write it after this. */
export function giveMemory (memory: ArrayBuffer): void { local.give(memory) }

/**
 * Memory for a body whose parsed value keeps views into it: shared memory from the pool when the
 * body is large enough to be kept, else an ArrayBuffer of its own.
 */
export function takeKeptMemory (size: number): ArrayBuffer | SharedArrayBuffer {
  return size >= SMALLEST_KEPT_BODY ? shared.take(size) : Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer
}

/** Gives back memory from `takeKeptMemory` once nothing reads it (an ArrayBuffer is left to the garbage collector). */
export function giveKeptMemory (memory: ArrayBufferLike): void {
  if (memory instanceof SharedArrayBuffer) shared.give(memory)
}

/** Bytes kept for reuse now, by pool (for /metrics and tests). */
export function keptMemoryBytes (): { local: number, shared: number } {
  return { local: local.bytes, shared: shared.bytes }
}

/**
 * Copies `parts` (tensors' bytes that arrived elsewhere, e.g. inside a gRPC message) into one
 * block of `takeKeptMemory`, each 8-byte aligned, so that typed arrays over them are views that
 * a kernel worker reads in place. `release` gives the block back once nothing reads them.
 * Parts too small together to be worth it stay as they are.
 */
export function keptCopy (parts: Buffer[]): { parts: Buffer[], release: () => void } {
  const at: number[] = []
  let size = 0
  for (const p of parts) {
    at.push(size)
    size += Math.ceil(p.length / 8) * 8
  }
  if (size < SMALLEST_KEPT_BODY) return { parts, release: () => {} }
  const memory = takeKeptMemory(size)
  const copies = parts.map((p, i) => {
    const copy = Buffer.from(memory, at[i], p.length)
    p.copy(copy)
    return copy
  })
  return { parts: copies, release: () => { giveKeptMemory(memory) } }
}
