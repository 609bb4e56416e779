/**
 * A floor under the old generation's allocation limit of V8's heap, so that the event loop
 * may run a full garbage collection when idle (to hand back the memory its pools let go:
 * src/http/body-memory.ts) without paying for it afterwards. Without the floor, after such a
 * collection V8 set the limit within a few MiB of the live heap (some 30 MiB here, most of a
 * request's data being outside it), and under the next load started marking again as soon as
 * one had ended: 12 to 16 full collections a second instead of 1 or 2, and [256,1000] base64 at
 * concurrency 64 at 165 to 280 req/s instead of 355 to 500, for as long as it was measured. With
 * `--initial-old-space-size=64`, 2 a second and no slowdown (one process, 1 s wrk runs after
 * idle spells; bench/README.md). It is set when the heap is made: NODE_OPTIONS may not carry
 * it, so the command line does (`npm start`, the Dockerfile), and the cluster primary passes it
 * to its workers.
 */
export const OLD_SPACE_FLOOR = '--initial-old-space-size=64'

const FLOOR_FLAG = /^--initial[-_]old[-_]space[-_]size=\d+$/

/** Whether `execArgv` gives the heap a floor (ours or the operator's own). */
export function hasOldSpaceFloor (execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some(a => FLOOR_FLAG.test(a))
}

/** The node flags for a worker process: the primary's own, and the floor unless they set one. */
export function workerExecArgv (execArgv: readonly string[]): string[] {
  return hasOldSpaceFloor(execArgv) ? [...execArgv] : [...execArgv, OLD_SPACE_FLOOR]
}
