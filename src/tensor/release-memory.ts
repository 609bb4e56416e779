import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A kernel worker's staging memory (memory-pool.ts) is let go once large kernels stop
 * coming: a worker that ran large tensors a while ago should not hold their copies for good.
 * Dropping them is not enough, though: an idle isolate does not collect, and a buffer's memory
 * returns to the system only when the garbage collector frees its ArrayBuffer. So after the
 * pool forgets its buffers, one full collection runs on that otherwise idle thread.
 *
 * Not on the event loop: there a forced full collection after an idle second left the process
 * slower for as long as it was measured (10 s: [256,1000] base64 at concurrency 64 at 200 to 290
 * req/s against 360 to 490 before it; bench/README.md), while on the kernel worker threads it cost
 * nothing measurable. The event loop's pools of bodies and decoded tensors stay bounded instead.
 */

/** How long a pool keeps its buffers with none taken or given back. */
export const KEPT_IDLE_MS = 1000

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
