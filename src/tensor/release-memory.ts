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
 * memory in afresh, and 81 ms after 10 s (28 ms under continuous load). 20 s, not 10: the load
 * after an idle spell just past it starts slower (memory faulted in afresh, the collection's
 * dip: HEAP_IDLE_MS below), and spells of 10 to 20 s are common (a pipeline's evaluation; a
 * benchmark taking turns with another server, 5 s each way twice). [256,1000] base64 at
 * concurrency 64 in 5 s runs after 10.3 s idle spells: 1.22 and 1.27 times the req/s with the
 * buffers kept 30 s than with 10 s (1.07 for nested numbers; 1.03 after 8 s spells, when
 * neither lets go; bench/README.md).
 */
export const KEPT_IDLE_MS = 20_000

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

/**
 * How long a process goes without requests before its heap is collected whatever its pools
 * held (`collectWhenIdle`): much longer than KEPT_IDLE_MS, since the collection costs the next
 * load: after it, cross_entropy [32,10] at concurrency 64 ran at a third to two thirds of its
 * rate for 2 to 3 s (the old generation's limit, cut to the live heap, took two more full
 * collections to grow back; a young generation kept at full size did not remove the dip),
 * against no dip after idle spells without one (A/B runs, bench/README.md). A pipeline pausing
 * between steps should not pay that; a process idle for a minute may.
 */
export const HEAP_IDLE_MS = 60_000

/**
 * One full collection on this thread once `ms` pass with no request (`lastActivity`: the
 * `Date.now()` of the latest), once per idle spell. The pools' collections run only when they
 * had buffers to let go, so a process that served small requests alone kept its grown young
 * generation (32 MiB) and its old generation's garbage, up to the heap's floor (src/heap.ts),
 * resident until V8 got round to it: two workers at 249 and 220 MiB 13 s after 10 s of
 * cross_entropy [32,10] (198 and 203 before it), 156 and 157 once collected. Returns a stop function.
 */
export function collectWhenIdle (lastActivity: () => number, ms: number = HEAP_IDLE_MS, collect: () => void = collectSoon, now: () => number = Date.now): () => void {
  // the latest activity a collection has followed (none yet: the warm-up's garbage goes too)
  let collectedAfter = -Infinity
  const timer = setInterval(() => {
    const last = lastActivity()
    if (last > collectedAfter && now() - last >= ms) {
      collectedAfter = last
      collect()
    }
  }, Math.max(1, Math.round(ms / 4)))
  timer.unref()
  return () => clearInterval(timer)
}
