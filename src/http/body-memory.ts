import { copyBytes } from '../tensor/copy-bytes'
import { MemoryPool } from '../tensor/memory-pool'
import { collectSoon, KEPT_IDLE_MS } from '../tensor/release-memory'
import { alignedUp, isOwnMemory, ownMemory } from '../tensor/tensor'

/**
 * Memory for request bodies, reused from one body to the next (see MemoryPool for why).
 * - A body whose parsed value keeps nothing of it (JSON: every value is decoded into memory of
 *   its own) gives its memory back as soon as it is parsed.
 * - A body whose tensors are views into it (V2's binary form), and large tensors decoded from
 *   JSON, go into shared memory, which a kernel worker reads in place (no transfer that detaches
 *   it), given back once the request is answered (`releaseBody` in raw-body.ts).
 *
 * Shared memory lives within a budget (SHARED_BODY_BYTES, in use and kept together), and what
 * is taken is given back, never left behind: V8 does not count a SharedArrayBuffer's bytes
 * towards collecting it, so dropped ones pile up (100 dropped 16 MiB buffers held 1.6 GiB here)
 * until a full collection happens for other reasons. Past the budget, memory of the request's
 * own is used, which moves to the kernel worker as before.
 */

/** Most bytes kept for reuse per pool; what is given back past it is left to the garbage collector. */
export const KEPT_BODY_BYTES = 32 * 2 ** 20

/** Smaller bodies are not kept: their pages are few and Node's allocator serves them well. */
export const SMALLEST_KEPT_BODY = 256 * 2 ** 10

/** Fresh memory of its own, uninitialised. */
const own = (size: number): ArrayBuffer => Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer

// kept (bounded) unless `letGoWhenIdle` is called: see there
const local = new MemoryPool<ArrayBuffer>(own, KEPT_BODY_BYTES, SMALLEST_KEPT_BODY)
/**
 * Most bytes of shared memory in existence: in use by requests and kept (96 MiB). Three times
 * the large bodies in progress by default (BODIES_IN_PROGRESS_MB, 32 MiB): a body of nested
 * numbers decodes to about 1.6 times its text (float64 as read, float32 for the kernel), and a
 * tensor past the budget takes fresh memory, whose bytes, counted as V8's external memory, make
 * it run a full collection every few of them (at 64 connections of [256,1000] nested bodies,
 * twice as many as with 96 MiB, and a tenth fewer answers a second: bench/README.md).
 */
export const SHARED_BODY_BYTES = 3 * KEPT_BODY_BYTES

const shared = new MemoryPool<SharedArrayBuffer>(size => new SharedArrayBuffer(size), SHARED_BODY_BYTES, SMALLEST_KEPT_BODY)
/** Bytes of the shared memory made and not forgotten (in use or kept). */
let sharedBytes = 0

/**
 * Lets both pools' buffers go once `ms` (KEPT_IDLE_MS, 20 s) pass with none taken or given back, then runs one full
 * collection on this thread to free them (release-memory.ts). Only where the heap has a floor
 * under its old generation's limit (src/heap.ts): without one, the collection left the event loop
 * slower under the next load for as long as it was measured. Without the call the pools keep
 * their buffers for good (bounded).
 */
export function letGoWhenIdle (ms: number = KEPT_IDLE_MS): void {
  local.forgetWhenIdle(ms, collectSoon)
  shared.forgetWhenIdle(ms, bytes => {
    sharedBytes -= bytes
    collectSoon()
  })
}

/** An ArrayBuffer of at least `size` bytes (uninitialised), kept or fresh. */
export function takeMemory (size: number): ArrayBuffer { return local.take(size) }

/** Gives `memory` back for a later body; nothing may read or write it after this. */
export function giveMemory (memory: ArrayBuffer): void { local.give(memory) }

/**
 * Memory for a body whose parsed value keeps views into it (or a tensor decoded from one):
 * shared memory when the size is large enough to be kept and the budget allows, else an
 * ArrayBuffer of its own. Kept shared buffers of other sizes are forgotten when that makes room.
 */
export function takeKeptMemory (size: number): ArrayBuffer | SharedArrayBuffer {
  return takeSharedMemory(size) ?? own(size)
}

/** Shared memory for `size` bytes as `takeKeptMemory` takes it; undefined when the size is too small or the budget is spent. */
export function takeSharedMemory (size: number): SharedArrayBuffer | undefined {
  if (size < SMALLEST_KEPT_BODY) return undefined
  const kept = shared.find(size)
  if (kept !== undefined) return kept
  // traffic of another size: forget the idle buffers (rare: they pile up only until a collection)
  if (sharedBytes + size > SHARED_BODY_BYTES && sharedBytes - shared.bytes + size <= SHARED_BODY_BYTES) sharedBytes -= shared.clear()
  if (sharedBytes + size > SHARED_BODY_BYTES) return undefined
  sharedBytes += size
  return new SharedArrayBuffer(size)
}

/** Gives back memory from `takeKeptMemory` once nothing reads it (an ArrayBuffer is left to the garbage collector). */
export function giveKeptMemory (memory: ArrayBufferLike): void {
  if (memory instanceof SharedArrayBuffer) sharedBytes -= shared.give(memory)
}

/** Bytes kept for reuse now, by pool, and shared bytes in use by requests (for /metrics and tests). */
export function keptMemoryBytes (): { local: number, shared: number, sharedInUse: number } {
  return { local: local.bytes, shared: shared.bytes, sharedInUse: sharedBytes - shared.bytes }
}

/**
 * Copies `parts` (tensors' bytes that arrived elsewhere, e.g. inside a gRPC message) into one
 * block of `takeKeptMemory`, each `TENSOR_ALIGN`-aligned, so that typed arrays over them are
 * views that a kernel worker reads in place. `release` gives the block back once nothing reads them.
 * Parts too small together to be worth it stay as they are, and so do parts in memory of the
 * request's own (`ownMemory`), which moves to the worker instead.
 */
export function keptCopy (parts: Buffer[]): { parts: Buffer[], release: () => void } {
  if (parts.length > 0 && parts.every(p => isOwnMemory(p.buffer))) return { parts, release: () => {} }
  const at: number[] = []
  let size = 0
  for (const p of parts) {
    at.push(size)
    size += alignedUp(p.length)
  }
  if (size < SMALLEST_KEPT_BODY) return { parts, release: () => {} }
  const memory = takeKeptMemory(size)
  // memory of its own (past the shared budget) holds this call's tensors only: it moves to the worker
  if (memory instanceof ArrayBuffer) ownMemory(memory)
  const copies = parts.map((p, i) => {
    const copy = Buffer.from(memory, at[i], p.length)
    copyBytes(p, copy, 0)
    return copy
  })
  return { parts: copies, release: () => { giveKeptMemory(memory) } }
}
