import * as ort from 'onnxruntime-node'
import { type SessionCache } from './session-cache'
import { fromOrt, type KernelTensors } from './tensors'

/**
 * Where kernels run. The batcher hands a kernel over only while `available()` is positive,
 * so an executor never queues: queueing (and batching) happens in front of it.
 */
export interface Executor {
  /** How many more kernels it can start now. */
  available: () => number
  /** Runs kernel `key` (building its session from `model()` when it is new). */
  run: (key: string, model: () => Uint8Array, feeds: KernelTensors) => Promise<KernelTensors>
  close: () => Promise<void>
}

/** ORT input tensors from plain kernel tensors. */
export function toOrt (feeds: KernelTensors): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {}
  for (const [name, t] of Object.entries(feeds)) out[name] = new ort.Tensor(t.type, t.data, t.dims)
  return out
}

/**
 * Runs kernels on the event-loop thread, one at a time (ORT's `run` computes synchronously
 * there). For tests and KERNEL_WORKERS=0; the server default is the worker pool.
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
