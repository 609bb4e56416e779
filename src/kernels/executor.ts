import * as ort from 'onnxruntime-node'
import { type SessionCache } from './session-cache'
import { fromOrt, type KernelTensors } from './tensors'

/**
 * A class of kernel workers: `short` serves ordinary calls, `long` the calls whose cost marks
 * them as slow (src/batching/policy.ts, `laneOf`), so that a minute-long kernel never holds
 * the worker small requests wait for. An executor without long workers serves both on one.
 */
export type Lane = 'short' | 'long'

/** How one kernel run is to be made: its lane, and how long it may take before it is abandoned. */
export interface RunOptions {
  lane?: Lane
  /** Milliseconds the run may take; past them the executor abandons it and throws KernelTimeout. */
  timeoutMs?: number
}

/**
 * Where kernels run. The batcher hands a kernel over only while `available(lane)` is positive,
 * so an executor never queues: queueing (and batching) happens in front of it.
 */
export interface Executor {
  /** How many more kernels it can start now in `lane` (default short). */
  available: (lane?: Lane) => number
  /** Runs kernel `key` (building its session from `model()` when it is new). */
  run: (key: string, model: () => Uint8Array, feeds: KernelTensors, options?: RunOptions) => Promise<KernelTensors>
  /** Subscribes to capacity coming back other than by a run ending (a worker started late). */
  onCapacity?: (listener: () => void) => void
  close: () => Promise<void>
}

/** A run abandoned at its `timeoutMs`: its worker was replaced (the thread ends once the kernel returns). */
export class KernelTimeout extends Error {
  constructor (readonly timeoutMs: number) {
    super(`kernel run abandoned after ${timeoutMs} ms`)
    this.name = 'KernelTimeout'
  }
}

/** ORT input tensors from plain kernel tensors. */
export function toOrt (feeds: KernelTensors): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {}
  for (const [name, t] of Object.entries(feeds)) out[name] = new ort.Tensor(t.type, t.data, t.dims)
  return out
}

/**
 * Runs kernels on the event-loop thread, one at a time (ORT's `run` computes synchronously
 * there). For tests and KERNEL_WORKERS=0; the server default is the worker pool. It has one
 * slot for both lanes, and cannot abandon a kernel: a timeout is enforced only in the queue.
 */
export class InProcessExecutor implements Executor {
  private running = 0
  constructor (private readonly sessions: SessionCache) {}
  available (): number { return this.running === 0 ? 1 : 0 }
  async run (key: string, model: () => Uint8Array, feeds: KernelTensors): Promise<KernelTensors> {
    this.running++
    try { return fromOrt(await this.sessions.run(key, model, toOrt(feeds))) } finally { this.running-- }
  }

  async close (): Promise<void> { await this.sessions.close() }
}
