import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * Pools of large buffers (memory-pool.ts) let them go once large requests stop coming: a
 * process that served large tensors a while ago should not hold their memory for good.
 * Dropping them is not enough, though: an idle isolate does not collect, and a buffer's memory
 * returns to the system only when the garbage collector frees its ArrayBuffer. So after a
 * pool forgets its buffers, one full collection runs on that otherwise idle thread: a kernel
 * worker's (its staging copies), and the event loop's (bodies and decoded tensors,
 * src/http/body-memory.ts) where the heap has a floor under its old generation's limit: without
 * one, the collection left the event loop slower under the next load for as long as it was
 * measured (src/heap.ts).
 */

/**
 * How long a pool keeps its buffers with none taken or given back: longer than most training
 * steps between two requests. One cross_entropy [4096,1000] request every 1.5 s (one process,
 * jemalloc) took 147 ms at p50 when the pools let go after 1 s, each request faulting its
 * memory in afresh, and 81 ms after 10 s (28 ms under continuous load).
 */
export const KEPT_IDLE_MS = 10_000

let collect: (() => void) | undefined | null

/** V8's `gc`, exposed to this thread alone: the flag is set for one new context and cleared again. */
function collector (): (() => void) | null {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc')
      collect = runInNewContext('gc') as () => void
    } catch {
      collect = null
    } finally {
      setFlagsFromString('--no-expose-gc')
    }
  }
  return collect
}

let pending = false

/** One full garbage collection soon (several calls in one turn of the event loop make one). */
export function collectSoon (): void {
  if (pending) return
  pending = true
  // not unref'd: an unref'd immediate alone does not wake an idle event loop, and would wait for
  // the next request to run
  setImmediate(() => {
    pending = false
    collector()?.()
  })
}
